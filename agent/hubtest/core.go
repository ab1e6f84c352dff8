package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Core is one hub process as far as a spawn step sees it: the lifecycle core over a real sqlite
// store, with the step under test before the stand-in unit. A step's own tests (gpu, vault)
// start one, and start another over the same Dir and Units to play a hub restart.
type Core struct {
	t       testing.TB
	Store   *store.Store
	Manager *servers.Manager
	Units   *Units
}

// CoreOptions says what the core runs.
type CoreOptions struct {
	Dir   string // the data dir: the same one again is the same database after a "restart"
	Units *Units // the units that outlive a hub process (nil: new ones)
	// Steps are the steps before the unit, made once the store is open (a step may keep its
	// records there, as the gpu allocator's ledger does).
	Steps        func(st *store.Store) []servers.Step
	StartTimeout time.Duration // 20 s when zero
	Logger       *slog.Logger  // discarded when nil
}

// StartCore opens the store, builds the core with the steps and runs its reconcile, as the
// wiring does at hub start (agent.Open, Hub.Run).
func StartCore(t testing.TB, o CoreOptions) *Core {
	t.Helper()
	ctx := context.Background()
	if o.Units == nil {
		o.Units = NewUnits()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 20 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	st, err := store.Open(ctx, filepath.Join(o.Dir, "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var steps []servers.Step
	if o.Steps != nil {
		steps = o.Steps(st)
	}
	core := servers.New(ctx, st, o.Units, append(steps, o.Units.Step()), servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: o.StartTimeout, StopTimeout: 10 * time.Second, Logger: o.Logger,
	})
	if err := core.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	return &Core{t: t, Store: st, Manager: core, Units: o.Units}
}

// User returns the user, created if new, in exactly these groups when any are given.
func (c *Core) User(name string, groups ...string) store.User {
	c.t.Helper()
	ctx := context.Background()
	u, err := c.Store.GetUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		u, err = c.Store.CreateUser(ctx, name, false)
	}
	if err == nil && len(groups) > 0 {
		u, err = c.Store.UpdateUser(ctx, name, store.UserPatch{Groups: &groups})
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return u
}

// Spawn starts the user's default server with these user options (JSON, or "").
func (c *Core) Spawn(u store.User, options string) *servers.Progress {
	c.t.Helper()
	var opts json.RawMessage
	if options != "" {
		opts = json.RawMessage(options)
	}
	prog, err := c.Manager.Start(u, "", opts)
	if err != nil {
		c.t.Fatal(err)
	}
	return prog
}

// Server is the user's default server record.
func (c *Core) Server(u store.User) store.Server {
	c.t.Helper()
	sv, err := c.Store.Server(context.Background(), u.ID, "")
	if err != nil {
		c.t.Fatal(err)
	}
	return sv
}

// Stop stops the user's default server and waits until it has stopped.
func (c *Core) Stop(u store.User) {
	c.t.Helper()
	done, err := c.Manager.Stop(c.Server(u))
	if err != nil {
		c.t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s's server did not stop", u.Name)
	}
}

// Finished waits for a spawn to end and returns its last event and every message it sent.
func Finished(t testing.TB, prog *servers.Progress) (servers.Event, []string) {
	t.Helper()
	select {
	case <-prog.Finished():
	case <-time.After(30 * time.Second):
		t.Fatal("the spawn did not finish")
	}
	events, _, _ := prog.Since(0)
	msgs := make([]string, 0, len(events))
	for _, ev := range events {
		msgs = append(msgs, ev.Message)
	}
	return prog.Last(), msgs
}
