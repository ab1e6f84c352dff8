package gpu_test

// These tests run the gpu step inside the real lifecycle core (agent/servers) over a real
// sqlite store, with hubtest's stand-in units, as a hub would: spawns, stops, progress, the
// failed event, and a restart.

import (
	"context"
	"io"
	"log/slog"
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
	*hubtest.Core
	alloc *gpu.Allocator
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
	var alloc *gpu.Allocator
	core := hubtest.StartCore(t, hubtest.CoreOptions{
		Dir: dir, Units: units, StartTimeout: startTimeout, Logger: quiet(),
		Steps: func(st *store.Store) []servers.Step {
			nv := gpu.OpenNVML(gpu.NVMLOptions{Library: oneGPU, Logger: quiet()})
			var err error
			alloc, err = gpu.NewAllocator(context.Background(), gpu.AllocatorOptions{Config: cfg, NVML: nv, Ledger: gpu.StoreLedger(st), Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			return []servers.Step{gpu.NewStep(alloc, quiet())}
		},
	})
	return &hub{Core: core, alloc: alloc}
}

func finished(t *testing.T, prog *servers.Progress) servers.Event {
	t.Helper()
	ev, _ := hubtest.Finished(t, prog)
	return ev
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
	alice, bob := h.User("alice"), h.User("bob")

	if ev := finished(t, h.Spawn(alice, `{"gpus": 1}`)); !ev.Ready {
		t.Fatalf("alice's spawn: %s", ev.Message)
	}
	bobs := h.Spawn(bob, `{"gpus": 1}`)
	waitFor(t, bobs, "waiting for a GPU (1st in line)")

	time.Sleep(startTimeout + 500*time.Millisecond)
	select {
	case <-bobs.Finished():
		t.Fatalf("bob's spawn ended while alice held the GPU: %s", bobs.Last().Message)
	default:
	}

	h.Stop(alice)
	if ev := finished(t, bobs); !ev.Ready {
		t.Fatalf("bob's spawn after alice stopped: %s", ev.Message)
	}
	seen := waitFor(t, bobs, "Got GPU 0")
	if g, ok := h.alloc.Grant(h.Server(bob).ID); !ok || g.Holder.User != "bob" {
		t.Errorf("bob's server holds %+v (%v); progress said %q", g, ok, seen)
	}
	if _, ok := h.alloc.Grant(h.Server(alice).ID); ok {
		t.Error("alice's stopped server still holds a GPU")
	}
}

func TestAnOverQuotaRequestFailsWithTheQuotaInTheFailedEvent(t *testing.T) {
	h := start(t, t.TempDir(), hubtest.NewUnits(), gpu.Config{Enabled: true, Queue: true, DefaultQuota: 0, Quota: map[string]int{"ml": 1}}, 20*time.Second)
	bob := h.User("bob", "students")
	ev := finished(t, h.Spawn(bob, `{"gpus": 1}`))
	want := "Spawn failed: GPU quota exceeded: bob may not use GPUs (the default quota is 0)"
	if !ev.Failed || !strings.HasPrefix(ev.Message, want) {
		t.Errorf("failed event %q, want %q", ev.Message, want)
	}
	if sv := h.Server(bob); sv.State != store.Stopped {
		t.Errorf("bob's server is %s after the refusal", sv.State)
	}
	// The same user in the ml group gets the GPU, and the failed attempt left nothing behind.
	bob = h.User("bob", "students", "ml")
	if ev := finished(t, h.Spawn(bob, `{"gpus": 1}`)); !ev.Ready {
		t.Errorf("bob in ml: %s", ev.Message)
	}
	// A request for no GPU is not held to the quota at all.
	carol := h.User("carol")
	if ev := finished(t, h.Spawn(carol, `{}`)); !ev.Ready {
		t.Errorf("carol without GPUs: %s", ev.Message)
	}
}

func TestAfterARestartARunningServerKeepsItsGPUAndADeadOneFreesIt(t *testing.T) {
	dir, units := t.TempDir(), hubtest.NewUnits()
	cfg := gpu.Config{Enabled: true, DefaultQuota: 1} // no queue: a taken GPU is refused at once
	h := start(t, dir, units, cfg, 20*time.Second)
	alice, bob := h.User("alice"), h.User("bob")
	if ev := finished(t, h.Spawn(alice, `{"gpus": 1}`)); !ev.Ready {
		t.Fatalf("alice's spawn: %s", ev.Message)
	}
	aliceServer := h.Server(alice).ID

	// A new hub process while alice's unit runs: her grant comes back from the store and the
	// GPU is not handed to bob.
	h = start(t, dir, units, cfg, 20*time.Second)
	if g, ok := h.alloc.Grant(aliceServer); !ok || g.Holder.User != "alice" {
		t.Fatalf("after a restart alice's running server holds %+v (%v)", g, ok)
	}
	ev := finished(t, h.Spawn(bob, `{"gpus": 1}`))
	if !ev.Failed || !strings.Contains(ev.Message, "no GPU free: this server asks for 1 GPU and 0 of 1 are free") {
		t.Errorf("bob while alice holds the GPU: %q", ev.Message)
	}

	// Alice's unit dies while no hub watches; the next hub's reconcile runs her server's stop
	// halves, which give the GPU back, and bob gets it.
	units.Stop(context.Background(), "jupyter-alice.service")
	h = start(t, dir, units, cfg, 20*time.Second)
	// Reconcile stops a dead server in the background, as any stop: wait for it.
	if done, err := h.Manager.Stop(h.Server(alice)); err == nil {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the reconciling stop of alice's dead server did not finish")
		}
	}
	if g, ok := h.alloc.Grant(aliceServer); ok {
		t.Fatalf("a dead server still holds %+v after reconcile", g)
	}
	if recs, _ := h.Store.GPUGrants(context.Background()); len(recs) != 0 {
		t.Errorf("the ledger still lists %+v", recs)
	}
	if ev := finished(t, h.Spawn(bob, `{"gpus": 1}`)); !ev.Ready {
		t.Errorf("bob after alice's server died: %s", ev.Message)
	}
}
