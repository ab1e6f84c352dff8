package servers_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// seen records what the core told its observer.
type seen struct {
	mu     sync.Mutex
	spawns []servers.SpawnStatus
	stops  []bool
	checks int
}

func (s *seen) SpawnFinished(st servers.SpawnStatus, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spawns = append(s.spawns, st)
}
func (s *seen) StopFinished(ok bool, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops = append(s.stops, ok)
}
func (s *seen) Polled(bool, time.Duration) {}
func (s *seen) Reconciled(time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks++
}

func (s *seen) snapshot() ([]servers.SpawnStatus, []bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]servers.SpawnStatus(nil), s.spawns...), append([]bool(nil), s.stops...), s.checks
}

// gate holds each user's spawn in its step until that user's channel is closed, so a second
// start finds it pending, or a stop finds it under way.
type gate struct{ release map[string]chan struct{} }

func (gate) Name() string { return "gate" }
func (g gate) Start(ctx context.Context, job *servers.Job) error {
	select {
	case <-g.release[job.User.Name]:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
func (gate) Stop(context.Context, store.Server) error { return nil }

func TestTheObserverHearsHowEachSpawnAndStopEnded(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	units, obs := hubtest.NewUnits(), &seen{}
	g := gate{release: map[string]chan struct{}{"alice": make(chan struct{}), "bob": make(chan struct{})}}
	m := servers.New(ctx, st, units, []servers.Step{g, units.Step()}, servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: 20 * time.Second, StopTimeout: 10 * time.Second,
		Observer: obs,
	})
	if err := m.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	alice, _ := st.CreateUser(ctx, "alice", false)
	bob, _ := st.CreateUser(ctx, "bob", false)
	wait := func(p *servers.Progress) servers.Event {
		t.Helper()
		select {
		case <-p.Finished():
		case <-time.After(20 * time.Second):
			t.Fatal("the spawn did not finish")
		}
		return p.Last()
	}
	first, err := m.Start(alice, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := m.Start(alice, "", nil); err != nil || again != first {
		t.Fatalf("a second start while spawning: %v, same progress %v", err, again == first)
	}
	close(g.release["alice"])
	if ev := wait(first); !ev.Ready {
		t.Fatalf("spawn: %s", ev.Message)
	}
	// bob's spawn is stopped before it is done: a failure, and a stop that worked.
	p, err := m.Start(bob, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sv, _ := st.Server(ctx, bob.ID, "")
	done, err := m.Stop(sv)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if ev := wait(p); !ev.Failed {
		t.Fatalf("the stopped spawn did not fail: %+v", ev)
	}
	spawns, stops, checks := obs.snapshot()
	want := []servers.SpawnStatus{servers.SpawnAlreadyPending, servers.SpawnSuccess, servers.SpawnFailure}
	if len(spawns) != len(want) || spawns[0] != want[0] || spawns[1] != want[1] || spawns[2] != want[2] {
		t.Errorf("spawns seen: %v, want %v", spawns, want)
	}
	if len(stops) != 1 || !stops[0] {
		t.Errorf("stops seen: %v, want one that worked", stops)
	}
	if checks != 1 {
		t.Errorf("reconciles seen: %d, want 1", checks)
	}
}
