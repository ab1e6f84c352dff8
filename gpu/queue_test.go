package gpu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

// spawn is one Acquire running in the background, as a spawn waiting on the progress page.
type spawn struct {
	mu        sync.Mutex
	positions []int
	grant     Grant
	err       error
	done      bool
	cancel    context.CancelFunc
}

func (s *spawn) state() ([]int, bool, Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.positions), s.done, s.grant, s.err
}

// startSpawn begins an Acquire and waits until it has been granted or is blocked in line.
func startSpawn(t *testing.T, a *Allocator, h Holder, req Request) *spawn {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &spawn{cancel: cancel}
	go func() {
		g, err := a.Acquire(ctx, h, req, func(pos int) {
			s.mu.Lock()
			s.positions = append(s.positions, pos)
			s.mu.Unlock()
		})
		s.mu.Lock()
		s.grant, s.err, s.done = g, err, true
		s.mu.Unlock()
	}()
	synctest.Wait()
	return s
}

func queueing() Config { return Config{Queue: true, DefaultQuota: 100} }

func TestQueueServesWaitersInArrivalOrderAsDevicesFree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAllocator(t, queueing(), newDGXA100(), newLedger())
		for id := int64(1); id <= 8; id++ {
			mustAcquire(t, a, holder(id, "owner"), Request{GPUs: 1})
		}
		first := startSpawn(t, a, holder(11, "ann"), Request{GPUs: 1})
		second := startSpawn(t, a, holder(12, "ben"), Request{GPUs: 1})
		third := startSpawn(t, a, holder(13, "cat"), Request{GPUs: 1})
		for _, s := range []*spawn{first, second, third} {
			if _, done, _, err := s.state(); done {
				t.Fatalf("a spawn finished with all GPUs held: %v", err)
			}
		}

		freed, _ := a.Grant(5)
		if err := a.Release(t.Context(), 5); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		_, done, g, err := first.state()
		if !done || err != nil || g.Devices[0].UUID != freed.Devices[0].UUID {
			t.Fatalf("first in line: done %v, %v, %v; want GPU 4", done, g.Devices, err)
		}
		if _, done, _, _ := second.state(); done {
			t.Fatal("second in line was served before a second GPU freed")
		}

		a.Release(t.Context(), 1)
		synctest.Wait()
		if _, done, _, err := second.state(); !done || err != nil {
			t.Fatalf("second in line: done %v, %v", done, err)
		}
		if _, done, _, _ := third.state(); done {
			t.Fatal("third in line was served early")
		}
		a.Release(t.Context(), 2)
		synctest.Wait()
		if _, done, _, err := third.state(); !done || err != nil {
			t.Fatalf("third in line: done %v, %v", done, err)
		}
	})
}

func TestQueuePositionIsReportedAndUpdated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAllocator(t, queueing(), newDGXA100(), newLedger())
		mustAcquire(t, a, holder(1, "owner"), Request{GPUs: 8})
		first := startSpawn(t, a, holder(11, "ann"), Request{GPUs: 4})
		second := startSpawn(t, a, holder(12, "ben"), Request{GPUs: 4})
		third := startSpawn(t, a, holder(13, "cat"), Request{GPUs: 8})

		for want, s := range map[int]*spawn{1: first, 2: second, 3: third} {
			if pos, _, _, _ := s.state(); !slices.Equal(pos, []int{want}) {
				t.Errorf("positions %v, want [%d]", pos, want)
			}
		}
		// All eight free at once: the first two are served (4 + 4); the third moves up.
		a.Release(t.Context(), 1)
		synctest.Wait()
		pos, done, _, _ := third.state()
		if done || !slices.Equal(pos, []int{3, 1}) {
			t.Errorf("third: done %v, positions %v, want still waiting, [3 1]", done, pos)
		}
		if got := WaitingMessage(pos[len(pos)-1]); got != "waiting for a GPU (1st in line)" {
			t.Errorf("progress message %q", got)
		}
	})
}

func TestCancelledSpawnLeavesTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ledger := newLedger()
		a := newAllocator(t, queueing(), newDGXA100(), ledger)
		mustAcquire(t, a, holder(1, "owner"), Request{GPUs: 8})
		first := startSpawn(t, a, holder(11, "ann"), Request{GPUs: 1})
		second := startSpawn(t, a, holder(12, "ben"), Request{GPUs: 1})
		third := startSpawn(t, a, holder(13, "cat"), Request{GPUs: 1})

		second.cancel() // ben closes the spawn page
		synctest.Wait()
		if _, done, _, err := second.state(); !done || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled spawn: done %v, %v", done, err)
		}
		if pos, _, _, _ := third.state(); !slices.Equal(pos, []int{3, 2}) {
			t.Errorf("third moved %v, want [3 2]", pos)
		}

		// Two GPUs free: the first and the third are served, ben is not.
		a.Release(t.Context(), 1)
		synctest.Wait()
		for _, s := range []*spawn{first, third} {
			if _, done, g, err := s.state(); !done || err != nil || len(g.Devices) != 1 {
				t.Errorf("served: done %v, %v, %v", done, g.Devices, err)
			}
		}
		if got := ledger.servers(); !slices.Equal(got, []int64{11, 13}) {
			t.Errorf("ledger %v, want 11 and 13", got)
		}
		if _, ok := a.Grant(12); ok {
			t.Error("the cancelled spawn holds a GPU")
		}
	})
}

func TestASmallRequestDoesNotOvertakeTheHeadOfTheLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAllocator(t, queueing(), newDGXA100(), newLedger())
		mustAcquire(t, a, holder(1, "owner"), Request{GPUs: 7})
		mustAcquire(t, a, holder(2, "owner"), Request{GPUs: 1})
		big := startSpawn(t, a, holder(11, "ann"), Request{GPUs: 2})
		a.Release(t.Context(), 2) // one GPU free: not enough for ann
		synctest.Wait()
		// ben needs only the one free GPU, but ann was first: ben waits behind her.
		small := startSpawn(t, a, holder(12, "ben"), Request{GPUs: 1})
		if pos, done, _, _ := small.state(); done || !slices.Equal(pos, []int{2}) {
			t.Fatalf("ben: done %v, positions %v; want waiting 2nd", done, pos)
		}
		a.Release(t.Context(), 1)
		synctest.Wait()
		_, bigDone, bg, _ := big.state()
		_, smallDone, sg, _ := small.state()
		if !bigDone || !smallDone || len(bg.Devices) != 2 || len(sg.Devices) != 1 {
			t.Errorf("after all freed: ann %v %v, ben %v %v", bigDone, bg.Devices, smallDone, sg.Devices)
		}
	})
}

func TestLinesForDifferentDevicesDoNotWaitForEachOther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAllocator(t, queueing(), newDGXH100MIG(t), newLedger())
		mustAcquire(t, a, holder(1, "owner"), Request{GPUs: 6})
		wholeWaiter := startSpawn(t, a, holder(2, "ann"), Request{GPUs: 1})
		if _, done, _, _ := wholeWaiter.state(); done {
			t.Fatal("whole-GPU request was not queued")
		}
		// A MIG device is free: a request for one is served even though someone waits for a
		// whole GPU.
		g, err := a.Acquire(t.Context(), holder(3, "ben"), Request{MIGProfile: "4g.40gb"}, func(int) {
			t.Error("MIG request queued behind a whole-GPU request")
		})
		if err != nil || g.Devices[0].Profile != "4g.40gb" {
			t.Fatalf("MIG request: %v, %v", g.Devices, err)
		}
		// And the next 4g.40gb request queues in its own line, first.
		mig := startSpawn(t, a, holder(4, "cat"), Request{MIGProfile: "4g.40gb"})
		if pos, done, _, _ := mig.state(); done || !slices.Equal(pos, []int{1}) {
			t.Errorf("second 4g.40gb: done %v, positions %v", done, pos)
		}
		a.Release(t.Context(), 3)
		synctest.Wait()
		if _, done, g, err := mig.state(); !done || err != nil || g.Devices[0].Profile != "4g.40gb" {
			t.Errorf("4g.40gb after release: %v, %v", g.Devices, err)
		}
		if _, done, _, _ := wholeWaiter.state(); done {
			t.Error("whole-GPU waiter served by a MIG device")
		}
	})
}

func TestQuotaIsCheckedAgainWhenAWaiterIsServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAllocator(t, Config{Queue: true, DefaultQuota: 1}, newDGXA100(), newLedger())
		for id := int64(1); id <= 8; id++ {
			mustAcquire(t, a, holder(id, fmt.Sprintf("owner%d", id)), Request{GPUs: 1})
		}
		// Two of ann's servers wait; only the first may get a GPU.
		first := startSpawn(t, a, Holder{ServerID: 11, User: "ann", Server: "one"}, Request{GPUs: 1})
		second := startSpawn(t, a, Holder{ServerID: 12, User: "ann", Server: "two"}, Request{GPUs: 1})
		a.Release(t.Context(), 1)
		synctest.Wait()
		if _, done, _, err := first.state(); !done || err != nil {
			t.Fatalf("first: %v", err)
		}
		a.Release(t.Context(), 2)
		synctest.Wait()
		if _, done, _, err := second.state(); !done || !errors.Is(err, ErrQuota) {
			t.Errorf("second: done %v, %v; want a quota error", done, err)
		}
	})
}

func TestWaitingMessageOrdinals(t *testing.T) {
	for pos, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 102: "102nd"} {
		if got := WaitingMessage(pos); got != "waiting for a GPU ("+want+" in line)" {
			t.Errorf("%d: %q", pos, got)
		}
	}
}
