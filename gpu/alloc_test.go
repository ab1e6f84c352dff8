package gpu

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestAcquireGivesFreeWholeGPUsAndRecordsThemFirst(t *testing.T) {
	ledger := newLedger()
	a := newAllocator(t, generous, newDGXA100(), ledger)
	inv := a.Inventory()

	g := mustAcquire(t, a, Holder{ServerID: 1, User: "alice", Server: "train"}, Request{GPUs: 2})
	if want := []string{inv.GPUs[0].UUID, inv.GPUs[1].UUID}; !slices.Equal(uuids(g.Devices), want) {
		t.Errorf("alice got %v, want GPUs 0 and 1 %v", uuids(g.Devices), want)
	}
	if !slices.Equal(ledger.servers(), []int64{1}) {
		t.Errorf("ledger holds %v before the unit starts, want server 1", ledger.servers())
	}
	g2 := mustAcquire(t, a, holder(2, "bob"), Request{GPUs: 1})
	if g2.Devices[0].UUID != inv.GPUs[2].UUID {
		t.Errorf("bob got %v, want GPU 2", g2.Devices)
	}
	if held, ok := a.Grant(1); !ok || !slices.Equal(uuids(held.Devices), uuids(g.Devices)) {
		t.Errorf("Grant(1) = %+v, %v", held, ok)
	}
}

func TestServerWithoutGPUsGetsNothing(t *testing.T) {
	ledger := newLedger()
	a := newAllocator(t, generous, newDGXA100(), ledger)
	g, err := a.Acquire(t.Context(), holder(1, "alice"), Request{}, nil)
	if err != nil || !g.Empty() {
		t.Fatalf("%+v, %v", g, err)
	}
	if len(ledger.servers()) != 0 || len(a.Grants()) != 0 {
		t.Errorf("an empty grant was recorded")
	}
	if err := a.Release(t.Context(), 1); err != nil {
		t.Errorf("releasing a server without GPUs: %v", err)
	}
	if g, err := a.Acquire(t.Context(), holder(2, "alice"), Request{MIGProfile: " "}, nil); err != nil || !g.Empty() {
		t.Errorf("a blank MIG profile: %+v, %v; want no GPU", g, err)
	}
}

func TestExhaustionSaysHowManyAreFreeAndWhoHoldsTheRest(t *testing.T) {
	a := newAllocator(t, generous, newDGXA100(), newLedger())
	mustAcquire(t, a, holder(1, "alice"), Request{GPUs: 5})
	mustAcquire(t, a, Holder{ServerID: 2, User: "bob", Server: "ml"}, Request{GPUs: 2})

	_, err := a.Acquire(t.Context(), holder(3, "carol"), Request{GPUs: 2}, nil)
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want a BusyError", err)
	}
	if want := "no GPU free: this server asks for 2 GPUs and 1 of 8 is free"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	if busy.Free != 1 || busy.Total != 8 {
		t.Errorf("free %d of %d", busy.Free, busy.Total)
	}
	if want := "GPU 0, GPU 1, GPU 2, GPU 3, GPU 4: alice (server 1); GPU 5, GPU 6: bob/ml (server 2)"; busy.Detail != want {
		t.Errorf("detail %q, want %q", busy.Detail, want)
	}
	if strings.Contains(err.Error(), "alice") {
		t.Errorf("the user-facing message names other users: %q", err.Error())
	}
}

func TestReleaseFreesTheDevicesForTheNextServer(t *testing.T) {
	ledger := newLedger()
	a := newAllocator(t, generous, newDGXA100(), ledger)
	first := mustAcquire(t, a, holder(1, "alice"), Request{GPUs: 8})
	if _, err := a.Acquire(t.Context(), holder(2, "bob"), Request{GPUs: 1}, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("with all 8 held: %v", err)
	}
	if err := a.Release(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if len(ledger.servers()) != 0 {
		t.Errorf("ledger still holds %v", ledger.servers())
	}
	g := mustAcquire(t, a, holder(2, "bob"), Request{GPUs: 8})
	if !slices.Equal(uuids(g.Devices), uuids(first.Devices)) {
		t.Errorf("bob got %v", uuids(g.Devices))
	}
}

func TestQuotaByGroupTakesTheLargestAndRefusesAtOnce(t *testing.T) {
	cfg := Config{Queue: true, Quota: map[string]int{"students": 1, "staff": 4}}
	a := newAllocator(t, cfg, newDGXA100(), newLedger())
	student := []string{"students"}

	mustAcquire(t, a, holder(1, "alice"), Request{GPUs: 1, Groups: student})
	// Queue mode, yet the refusal is immediate: waiting would not help.
	_, err := a.Acquire(t.Context(), Holder{ServerID: 2, User: "alice", Server: "second"}, Request{GPUs: 1, Groups: student}, func(int) {
		t.Error("a request over quota was queued")
	})
	var q *QuotaError
	if !errors.As(err, &q) || !errors.Is(err, ErrQuota) {
		t.Fatalf("alice's second GPU: %v, want a QuotaError", err)
	}
	if want := `GPU quota exceeded: alice may hold 1 GPU at a time (the quota of group "students") and already holds 1; this server asks for 1 more`; err.Error() != want {
		t.Errorf("message %q\nwant    %q", err.Error(), want)
	}

	// In both groups: the larger quota.
	mustAcquire(t, a, holder(3, "bob"), Request{GPUs: 4, Groups: []string{"students", "staff"}})
	if _, err := a.Acquire(t.Context(), holder(4, "bob"), Request{GPUs: 1, Groups: []string{"staff", "students"}}, nil); !errors.As(err, &q) || q.Limit != 4 || q.Group != "staff" {
		t.Errorf("bob's fifth GPU: %v", err)
	}

	// In no listed group: the default quota, here 0.
	_, err = a.Acquire(t.Context(), holder(5, "carol"), Request{GPUs: 1, Groups: []string{"guests"}}, nil)
	if !errors.As(err, &q) || err.Error() != "GPU quota exceeded: carol may not use GPUs (the default quota is 0)" {
		t.Errorf("carol: %v", err)
	}
}

func TestMIGDevicesAreGrantedOneServerEachAndNeverOverlap(t *testing.T) {
	a := newAllocator(t, generous, newDGXH100MIG(t), newLedger())
	seenUUID := map[string]int64{}
	seenNode := map[string]int64{}
	for id := int64(1); id <= 7; id++ {
		g := mustAcquire(t, a, holder(id, "user"), Request{MIGProfile: "1g.10gb"})
		if len(g.Devices) != 1 || g.Devices[0].Profile != "1g.10gb" || g.Devices[0].GPU != 0 {
			t.Fatalf("server %d got %+v", id, g.Devices)
		}
		d := g.Devices[0]
		if other, dup := seenUUID[d.UUID]; dup {
			t.Errorf("%s given to servers %d and %d", d.UUID, other, id)
		}
		seenUUID[d.UUID] = id
		for _, n := range d.CapNodes {
			if other, dup := seenNode[n]; dup {
				t.Errorf("capability %s given to servers %d and %d", n, other, id)
			}
			seenNode[n] = id
		}
	}
	_, err := a.Acquire(t.Context(), holder(8, "user"), Request{MIGProfile: "1g.10gb"}, nil)
	if !errors.Is(err, ErrBusy) || err.Error() != "no GPU free: this server asks for a MIG 1g.10gb device and 0 of 7 are free" {
		t.Errorf("eighth 1g.10gb: %v", err)
	}

	// Other profiles come from their own devices; "MIG 3G.40GB" is the same as "3g.40gb".
	g := mustAcquire(t, a, holder(9, "user"), Request{MIGProfile: "MIG 3G.40GB"})
	if d := g.Devices[0]; d.Profile != "3g.40gb" || d.GPU != 1 || seenUUID[d.UUID] != 0 {
		t.Errorf("3g.40gb grant %+v", d)
	}

	// GPUs in MIG mode are never given whole: six of the eight can be.
	whole := mustAcquire(t, a, holder(10, "user"), Request{GPUs: 6})
	for _, d := range whole.Devices {
		if d.GPU < 2 || d.IsMIG() {
			t.Errorf("whole-GPU grant includes %v", d)
		}
	}
	if err := a.Release(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	_, err = a.Acquire(t.Context(), holder(11, "user"), Request{GPUs: 7}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "this server asks for 7 GPUs and this host has 6 to give whole") {
		t.Errorf("7 whole GPUs: %v", err)
	}
	_, err = a.Acquire(t.Context(), holder(12, "user"), Request{MIGProfile: "2g.20gb"}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no MIG 2g.20gb device (it has: 1g.10gb, 3g.40gb, 4g.40gb)") {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestReconcileAfterRestartDropsGrantsOfServersThatStopped(t *testing.T) {
	ledger := newLedger()
	lib := newDGXA100()
	before := newAllocator(t, generous, lib, ledger)
	for id := int64(1); id <= 3; id++ {
		mustAcquire(t, before, holder(id, "user"), Request{GPUs: 2})
	}
	held := map[int64][]string{}
	for _, g := range before.Grants() {
		held[g.Holder.ServerID] = uuids(g.Devices)
	}

	// The hub restarts; server 2 stopped while it was down.
	after := newAllocator(t, generous, lib, ledger)
	if len(after.Grants()) != 3 {
		t.Fatalf("after restart %d grants are held, want the 3 from the ledger", len(after.Grants()))
	}
	// Until reconciled, nothing held is handed out again.
	g := mustAcquire(t, after, holder(4, "user"), Request{GPUs: 2})
	for _, u := range uuids(g.Devices) {
		for id, hs := range held {
			if slices.Contains(hs, u) {
				t.Errorf("server 4 got %s, held by server %d", u, id)
			}
		}
	}
	if err := after.Reconcile(t.Context(), map[int64]bool{1: true, 3: true, 4: true}); err != nil {
		t.Fatal(err)
	}
	if got := ledger.servers(); !slices.Equal(got, []int64{1, 3, 4}) {
		t.Errorf("ledger after reconcile: %v, want 1 3 4", got)
	}
	if _, ok := after.Grant(2); ok {
		t.Error("server 2's stale grant survived")
	}
	g5 := mustAcquire(t, after, holder(5, "user"), Request{GPUs: 2})
	if !slices.Equal(uuids(g5.Devices), held[2]) {
		t.Errorf("server 5 got %v, want server 2's freed %v", uuids(g5.Devices), held[2])
	}
}

func TestGrantThatCannotBeRecordedIsNotGiven(t *testing.T) {
	ledger := newLedger()
	a := newAllocator(t, generous, newDGXA100(), ledger)
	ledger.failHold = errors.New("database is locked")
	_, err := a.Acquire(t.Context(), holder(1, "alice"), Request{GPUs: 8}, nil)
	if err == nil || !strings.Contains(err.Error(), "record the grant: database is locked") {
		t.Fatalf("err = %v", err)
	}
	ledger.failHold = nil
	mustAcquire(t, a, holder(2, "bob"), Request{GPUs: 8})
}

func TestReleaseThatCannotBeRecordedKeepsTheDevicesHeld(t *testing.T) {
	ledger := newLedger()
	a := newAllocator(t, generous, newDGXA100(), ledger)
	mustAcquire(t, a, holder(1, "alice"), Request{GPUs: 8})
	ledger.failClear = errors.New("disk full")
	if err := a.Release(t.Context(), 1); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("release: %v", err)
	}
	if _, err := a.Acquire(t.Context(), holder(2, "bob"), Request{GPUs: 1}, nil); !errors.Is(err, ErrBusy) {
		t.Errorf("after a failed release: %v, want the GPUs still held", err)
	}
	ledger.failClear = nil
	if err := a.Release(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, a, holder(2, "bob"), Request{GPUs: 1})
}

func TestRequestsThatCannotBeMetFailAtOnce(t *testing.T) {
	a := newAllocator(t, Config{Queue: true, DefaultQuota: 100}, newDGXA100(), newLedger())
	mustAcquire(t, a, holder(1, "alice"), Request{GPUs: 1})
	for _, c := range []struct {
		id   int64
		req  Request
		want string
	}{
		{2, Request{GPUs: -1}, "negative"},
		{2, Request{GPUs: 1, MIGProfile: "1g.10gb"}, "not both"},
		{2, Request{GPUs: 9}, "asks for 9 GPUs and this host has 8"},
		{2, Request{MIGProfile: "1g.5gb"}, "no MIG devices, so no MIG 1g.5gb"},
		{1, Request{GPUs: 1}, "already holds GPU 0"},
	} {
		_, err := a.Acquire(t.Context(), holder(c.id, "alice"), c.req, func(int) { t.Errorf("%v was queued", c.req) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.req, err, c.want)
		}
	}

	off, err := NewAllocator(t.Context(), AllocatorOptions{Config: Config{}, Ledger: newLedger(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Acquire(t.Context(), holder(1, "alice"), Request{GPUs: 1}, nil); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "gpu.enabled = false") {
		t.Errorf("GPUs turned off: %v", err)
	}
}

func TestFiftyConcurrentAcquiresNeverShareADevice(t *testing.T) {
	a := newAllocator(t, generous, newDGXA100(), newLedger())
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		owner = map[string]int64{}
		busy  int
	)
	for id := int64(1); id <= 50; id++ {
		wg.Go(func() {
			g, err := a.Acquire(t.Context(), holder(id, "user"), Request{GPUs: 1}, nil)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, ErrBusy) {
				busy++
				return
			}
			if err != nil {
				t.Errorf("server %d: %v", id, err)
				return
			}
			for _, u := range uuids(g.Devices) {
				if other, dup := owner[u]; dup {
					t.Errorf("%s given to servers %d and %d", u, other, id)
				}
				owner[u] = id
			}
		})
	}
	wg.Wait()
	if len(owner) != 8 || busy != 42 {
		t.Errorf("%d devices handed out, %d refused; want 8 and 42", len(owner), busy)
	}
}

func TestFiftyConcurrentQueuedSpawnsTakeTurns(t *testing.T) {
	a := newAllocator(t, Config{Queue: true, DefaultQuota: 100}, newDGXA100(), newLedger())
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		inUse = map[string]int64{}
		done  int
	)
	for id := int64(1); id <= 50; id++ {
		wg.Go(func() {
			g, err := a.Acquire(t.Context(), holder(id, "user"), Request{GPUs: 2}, nil)
			if err != nil {
				t.Errorf("server %d: %v", id, err)
				return
			}
			mu.Lock()
			for _, u := range uuids(g.Devices) {
				if other, dup := inUse[u]; dup {
					t.Errorf("%s given to server %d while server %d holds it", u, id, other)
				}
				inUse[u] = id
			}
			mu.Unlock()
			runtime.Gosched() // let others try for the same devices while these are in use

			mu.Lock()
			for _, u := range uuids(g.Devices) {
				delete(inUse, u)
			}
			done++
			mu.Unlock()
			if err := a.Release(t.Context(), id); err != nil {
				t.Errorf("release %d: %v", id, err)
			}
		})
	}
	wg.Wait()
	if done != 50 || len(a.Grants()) != 0 {
		t.Errorf("%d of 50 spawns got their GPUs; %d grants left", done, len(a.Grants()))
	}
}
