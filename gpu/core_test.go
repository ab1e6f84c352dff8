package gpu_test

// These tests run the gpu step inside the real lifecycle core (agent/servers) over a real
// sqlite store, with hubtest's stand-in units, as a hub would: spawns, stops, progress, the
// failed event, and a restart.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

// hub is one hub process: a store, an allocator and a core with the gpu step before the unit.
type hub struct {
	t     *testing.T
	st    *store.Store
	alloc *gpu.Allocator
	core  *servers.Manager
}

// oneGPU is a host with a single A100, the same card across "restarts".
var oneGPU = dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs a hub over the database in dir and the units that outlive it, as the wiring does
// (agent.Open, Hub.Run): allocator over the store's ledger, then the core, then its reconcile.
// (Hub.Reconcile then also drops grants the core's reconcile did not reach; agent's tests
// cover that.)
func start(t *testing.T, dir string, units *hubtest.Units, cfg gpu.Config, startTimeout time.Duration) *hub {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	nv := gpu.OpenNVML(gpu.NVMLOptions{Library: oneGPU, Logger: quiet()})
	alloc, err := gpu.NewAllocator(ctx, gpu.AllocatorOptions{Config: cfg, NVML: nv, Ledger: gpu.StoreLedger(st), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	core := servers.New(ctx, st, units, []servers.Step{gpu.NewStep(alloc, quiet()), units.Step()}, servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: startTimeout, StopTimeout: 10 * time.Second, Logger: quiet(),
	})
	if err := core.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	return &hub{t: t, st: st, alloc: alloc, core: core}
}

func (h *hub) user(name string, groups ...string) store.User {
	h.t.Helper()
	ctx := context.Background()
	u, err := h.st.GetUser(ctx, name)
	if err != nil {
		if u, err = h.st.CreateUser(ctx, name, false); err != nil {
			h.t.Fatal(err)
		}
	}
	if u, err = h.st.UpdateUser(ctx, name, store.UserPatch{Groups: &groups}); err != nil {
		h.t.Fatal(err)
	}
	return u
}

func (h *hub) spawn(u store.User, opts string) *servers.Progress {
	h.t.Helper()
	prog, err := h.core.Start(u, "", json.RawMessage(opts))
	if err != nil {
		h.t.Fatal(err)
	}
	return prog
}

func (h *hub) server(u store.User) store.Server {
	h.t.Helper()
	sv, err := h.st.Server(context.Background(), u.ID, "")
	if err != nil {
		h.t.Fatal(err)
	}
	return sv
}

func (h *hub) stop(u store.User) {
	h.t.Helper()
	done, err := h.core.Stop(h.server(u))
	if err != nil {
		h.t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		h.t.Fatalf("%s's server did not stop", u.Name)
	}
}

func finished(t *testing.T, prog *servers.Progress) servers.Event {
	t.Helper()
	select {
	case <-prog.Finished():
	case <-time.After(20 * time.Second):
		t.Fatal("spawn did not finish")
	}
	return prog.Last()
}

// waitFor waits for a progress message and returns every message seen so far.
func waitFor(t *testing.T, prog *servers.Progress, msg string) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		events, changed, done := prog.Since(0)
		var seen []string
		for _, ev := range events {
			seen = append(seen, ev.Message)
			if strings.Contains(ev.Message, msg) {
				return seen
			}
		}
		if done {
			t.Fatalf("spawn ended without %q; it said %q", msg, seen)
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %q on the progress stream; it said %q", msg, seen)
		}
	}
}

func TestTheSecondUserWaitsInLineForTheGPUAndStartsWhenItFrees(t *testing.T) {
	// A start timeout shorter than bob's wait: time in line must not count against it.
	const startTimeout = 2 * time.Second
	h := start(t, t.TempDir(), hubtest.NewUnits(), gpu.Config{Enabled: true, Queue: true, DefaultQuota: 1}, startTimeout)
	alice, bob := h.user("alice"), h.user("bob")

	if ev := finished(t, h.spawn(alice, `{"gpus": 1}`)); !ev.Ready {
		t.Fatalf("alice's spawn: %s", ev.Message)
	}
	bobs := h.spawn(bob, `{"gpus": 1}`)
	waitFor(t, bobs, "waiting for a GPU (1st in line)")

	time.Sleep(startTimeout + 500*time.Millisecond)
	select {
	case <-bobs.Finished():
		t.Fatalf("bob's spawn ended while alice held the GPU: %s", bobs.Last().Message)
	default:
	}

	h.stop(alice)
	if ev := finished(t, bobs); !ev.Ready {
		t.Fatalf("bob's spawn after alice stopped: %s", ev.Message)
	}
	seen := waitFor(t, bobs, "Got GPU 0")
	if g, ok := h.alloc.Grant(h.server(bob).ID); !ok || g.Holder.User != "bob" {
		t.Errorf("bob's server holds %+v (%v); progress said %q", g, ok, seen)
	}
	if _, ok := h.alloc.Grant(h.server(alice).ID); ok {
		t.Error("alice's stopped server still holds a GPU")
	}
}

func TestAnOverQuotaRequestFailsWithTheQuotaInTheFailedEvent(t *testing.T) {
	h := start(t, t.TempDir(), hubtest.NewUnits(), gpu.Config{Enabled: true, Queue: true, DefaultQuota: 0, Quota: map[string]int{"ml": 1}}, 20*time.Second)
	bob := h.user("bob", "students")
	ev := finished(t, h.spawn(bob, `{"gpus": 1}`))
	want := "Spawn failed: GPU quota exceeded: bob may not use GPUs (the default quota is 0)"
	if !ev.Failed || !strings.HasPrefix(ev.Message, want) {
		t.Errorf("failed event %q, want %q", ev.Message, want)
	}
	if sv := h.server(bob); sv.State != store.Stopped {
		t.Errorf("bob's server is %s after the refusal", sv.State)
	}
	// The same user in the ml group gets the GPU, and the failed attempt left nothing behind.
	bob = h.user("bob", "students", "ml")
	if ev := finished(t, h.spawn(bob, `{"gpus": 1}`)); !ev.Ready {
		t.Errorf("bob in ml: %s", ev.Message)
	}
	// A request for no GPU is not held to the quota at all.
	carol := h.user("carol")
	if ev := finished(t, h.spawn(carol, `{}`)); !ev.Ready {
		t.Errorf("carol without GPUs: %s", ev.Message)
	}
}

func TestAfterARestartARunningServerKeepsItsGPUAndADeadOneFreesIt(t *testing.T) {
	dir, units := t.TempDir(), hubtest.NewUnits()
	cfg := gpu.Config{Enabled: true, DefaultQuota: 1} // no queue: a taken GPU is refused at once
	h := start(t, dir, units, cfg, 20*time.Second)
	alice, bob := h.user("alice"), h.user("bob")
	if ev := finished(t, h.spawn(alice, `{"gpus": 1}`)); !ev.Ready {
		t.Fatalf("alice's spawn: %s", ev.Message)
	}
	aliceServer := h.server(alice).ID

	// A new hub process while alice's unit runs: her grant comes back from the store and the
	// GPU is not handed to bob.
	h = start(t, dir, units, cfg, 20*time.Second)
	if g, ok := h.alloc.Grant(aliceServer); !ok || g.Holder.User != "alice" {
		t.Fatalf("after a restart alice's running server holds %+v (%v)", g, ok)
	}
	ev := finished(t, h.spawn(bob, `{"gpus": 1}`))
	if !ev.Failed || !strings.Contains(ev.Message, "no GPU free: this server asks for 1 GPU and 0 of 1 are free") {
		t.Errorf("bob while alice holds the GPU: %q", ev.Message)
	}

	// Alice's unit dies while no hub watches; the next hub's reconcile runs her server's stop
	// halves, which give the GPU back, and bob gets it.
	units.Stop(context.Background(), "jupyter-alice.service")
	h = start(t, dir, units, cfg, 20*time.Second)
	// Reconcile stops a dead server in the background, as any stop: wait for it.
	if done, err := h.core.Stop(h.server(alice)); err == nil {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the reconciling stop of alice's dead server did not finish")
		}
	}
	if g, ok := h.alloc.Grant(aliceServer); ok {
		t.Fatalf("a dead server still holds %+v after reconcile", g)
	}
	if recs, _ := h.st.GPUGrants(context.Background()); len(recs) != 0 {
		t.Errorf("the ledger still lists %+v", recs)
	}
	if ev := finished(t, h.spawn(bob, `{"gpus": 1}`)); !ev.Ready {
		t.Errorf("bob after alice's server died: %s", ev.Message)
	}
}
