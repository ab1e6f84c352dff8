package servers_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// recorder is a test-only step, shaped as a concern's step would be: it writes down its start and
// stop halves in one shared log, and fails its start when told to.
type recorder struct {
	name string
	log  *journal
	fail bool
}

type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) { j.mu.Lock(); j.lines = append(j.lines, s); j.mu.Unlock() }
func (j *journal) take() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := j.lines
	j.lines = nil
	return out
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Start(ctx context.Context, job *servers.Job) error {
	r.log.add("start " + r.name)
	if r.fail {
		return errors.New(r.name + " is out of order")
	}
	job.Env["FROM_"+strings.ToUpper(r.name)] = "1"
	job.Progress(20, r.name+" done")
	return nil
}

// Stop sees only the stored record: it notes the unit it was handed, which comes from the store.
func (r *recorder) Stop(ctx context.Context, sv store.Server) error {
	r.log.add(fmt.Sprintf("stop %s %s", r.name, sv.Unit))
	return nil
}

type core struct {
	t     *testing.T
	st    *store.Store
	units *hubtest.Units
	m     *servers.Manager
	user  store.User
}

// newCore opens (or reopens, as after a hub restart) a store in dir and runs a core over it with
// the given steps before the stand-in unit.
func newCore(t *testing.T, dir string, units *hubtest.Units, steps ...servers.Step) *core {
	return newCoreTimeout(t, dir, units, 20*time.Second, steps...)
}

// newCoreTimeout is newCore with spawner.start_timeout set to startTimeout.
func newCoreTimeout(t *testing.T, dir string, units *hubtest.Units, startTimeout time.Duration, steps ...servers.Step) *core {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := servers.New(context.Background(), st, units, append(steps, units.Step()), servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: startTimeout, StopTimeout: 10 * time.Second,
	})
	u, err := st.GetUser(context.Background(), "alice")
	if errors.Is(err, store.ErrNotFound) {
		u, err = st.CreateUser(context.Background(), "alice", false)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &core{t: t, st: st, units: units, m: m, user: u}
}

func (c *core) spawn() servers.Event {
	c.t.Helper()
	prog, err := c.m.Start(c.user, "", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	select {
	case <-prog.Finished():
	case <-time.After(20 * time.Second):
		c.t.Fatal("spawn did not finish")
	}
	return prog.Last()
}

// waitStopped waits for the stop under way (Stop hands back its channel) to finish.
func (c *core) waitStopped() {
	c.t.Helper()
	done, err := c.m.Stop(c.server())
	if err != nil {
		c.t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.t.Fatal("the stop did not finish")
	}
}

func (c *core) server() store.Server {
	sv, err := c.st.Server(context.Background(), c.user.ID, "")
	if err != nil {
		c.t.Fatal(err)
	}
	return sv
}

func TestStepsRunInOrderAndUndoInReverse(t *testing.T) {
	log := &journal{}
	gpu, vault := &recorder{name: "gpu", log: log}, &recorder{name: "vault", log: log}
	c := newCore(t, t.TempDir(), hubtest.NewUnits(), gpu, vault)

	if ev := c.spawn(); !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}
	if got := log.take(); !slices.Equal(got, []string{"start gpu", "start vault"}) {
		t.Errorf("start halves ran as %q", got)
	}
	if _, ok := c.m.Route("alice", ""); !ok {
		t.Error("a ready server has no route")
	}

	done, err := c.m.Stop(c.server())
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if got := log.take(); !slices.Equal(got, []string{"stop vault jupyter-alice.service", "stop gpu jupyter-alice.service"}) {
		t.Errorf("stop halves ran as %q, want the reverse of the start", got)
	}
	if _, ok := c.m.Route("alice", ""); ok || c.server().State != store.Stopped {
		t.Errorf("after stop: route kept or state %s", c.server().State)
	}
}

func TestAFailingStepUndoesItselfAndEveryStepBefore(t *testing.T) {
	log := &journal{}
	first := &recorder{name: "home", log: log}
	broken := &recorder{name: "gpu", log: log, fail: true}
	never := &recorder{name: "vault", log: log}
	c := newCore(t, t.TempDir(), hubtest.NewUnits(), first, broken, never)

	ev := c.spawn()
	if !ev.Failed || !strings.Contains(ev.Message, "gpu is out of order") {
		t.Fatalf("last event %+v, want the failing step's reason", ev)
	}
	want := []string{"start home", "start gpu", "stop gpu jupyter-alice.service", "stop home jupyter-alice.service"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("steps ran as %q, want %q", got, want)
	}
	if sv := c.server(); sv.State != store.Stopped {
		t.Errorf("failed spawn left the server %s", sv.State)
	}
	if msg, ok := c.m.LastFailure(c.server()); !ok || !strings.Contains(msg, "gpu is out of order") {
		t.Errorf("LastFailure = %q, %v", msg, ok)
	}

	broken.fail = false // once fixed, the same server starts
	if ev := c.spawn(); !ev.Ready {
		t.Errorf("spawn after the fix: %s", ev.Message)
	}
}

func TestAfterARestartStopHalvesWorkFromTheStoredRecord(t *testing.T) {
	dir, units := t.TempDir(), hubtest.NewUnits()
	before := &journal{}
	c := newCore(t, dir, units, &recorder{name: "vault", log: before})
	if ev := c.spawn(); !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}

	// A new hub process: nothing in memory but what the store and the units say.
	after := &journal{}
	restarted := newCore(t, dir, units, &recorder{name: "vault", log: after})
	if err := restarted.m.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := restarted.m.Route("alice", ""); !ok {
		t.Fatal("a server whose unit still runs was not adopted")
	}
	if got := after.take(); len(got) != 0 {
		t.Errorf("adopting a running server ran steps: %q", got)
	}

	// The unit dies while no hub watches; the next start cleans up from the record alone.
	units.Stop(context.Background(), "jupyter-alice.service")
	again := newCore(t, dir, units, &recorder{name: "vault", log: after})
	if err := again.m.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	again.waitStopped()
	if got := after.take(); !slices.Equal(got, []string{"stop vault jupyter-alice.service"}) {
		t.Errorf("reconcile of a dead server ran %q, want the vault step's stop half", got)
	}
	if sv := again.server(); sv.State != store.Stopped {
		t.Errorf("dead server left %s", sv.State)
	}
}

// blocker is a step whose stop half hangs until released, like a unit that ignores SIGTERM.
type blocker struct {
	release chan struct{}
	stops   chan struct{} // one value for every stop half that begins
}

func newBlocker() *blocker {
	return &blocker{release: make(chan struct{}), stops: make(chan struct{}, 10)}
}

func (*blocker) Name() string                                      { return "stubborn" }
func (*blocker) Start(ctx context.Context, job *servers.Job) error { return nil }
func (b *blocker) Stop(ctx context.Context, sv store.Server) error {
	b.stops <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("did not stop: %w", ctx.Err())
	}
}

// A hub restarted after a crash mid-stop used to finish that stop before it listened: one
// process ignoring SIGTERM kept the router down for everyone for the whole stop timeout.
func TestARestartDoesNotWaitForInterruptedStops(t *testing.T) {
	dir, units := t.TempDir(), hubtest.NewUnits()
	c := newCore(t, dir, units)
	if ev := c.spawn(); !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}
	sv := c.server()
	sv.State = store.Stopping // what a hub that died mid-stop leaves behind
	if err := c.st.SaveServer(context.Background(), sv); err != nil {
		t.Fatal(err)
	}

	stuck := newBlocker()
	restarted := newCore(t, dir, units, stuck)
	returned := make(chan error, 1)
	go func() { returned <- restarted.m.Reconcile(context.Background()) }()
	<-stuck.stops // the interrupted stop has begun...
	select {
	case err := <-returned: // ...and Reconcile is back without waiting for it
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reconcile waited for a stop that hangs")
	}
	if _, err := restarted.m.Start(restarted.user, "", nil); !errors.Is(err, servers.ErrConflict) {
		t.Errorf("starting a server that is still stopping: %v, want a conflict", err)
	}
	close(stuck.release)
	restarted.waitStopped()
	if st := restarted.server().State; st != store.Stopped {
		t.Errorf("after the stop finished: %s", st)
	}
}

// A stop that ran into spawner.stop_timeout left the server "stopping" for ever: the write that
// should have recorded it used the expired context.
func TestAStopThatTimesOutLeavesTheServerRunningAndRouted(t *testing.T) {
	stuck := newBlocker()
	c := newCore(t, t.TempDir(), hubtest.NewUnits(), stuck)
	// stuck comes last, so it stops first and nothing after it: a unit that ignores SIGTERM.
	c.m = servers.New(context.Background(), c.st, c.units, []servers.Step{c.units.Step(), stuck}, servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: 20 * time.Second, StopTimeout: 200 * time.Millisecond,
	})
	if ev := c.spawn(); !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}
	done, err := c.m.Stop(c.server())
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if st := c.server().State; st != store.Running {
		t.Errorf("after a stop that timed out: %s, want running (the unit is still there)", st)
	}
	if _, ok := c.m.Route("alice", ""); !ok {
		t.Error("the server that did not stop lost its route")
	}
	close(stuck.release) // it gives in: the next stop works
	done, _ = c.m.Stop(c.server())
	<-done
	if st := c.server().State; st != store.Stopped {
		t.Errorf("second stop: %s", st)
	}
}

// waiter is a test-only step that works for a while, waits in a queue for a while, and works
// again, as the gpu step does when every GPU is taken.
type waiter struct {
	before, queued, after time.Duration
	tellCore              bool          // calls Job.Queued around the wait, as a queueing step must
	joined                chan struct{} // closed when it joins the queue
}

func (w *waiter) Name() string { return "queue" }

func (w *waiter) Start(ctx context.Context, job *servers.Job) error {
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return fmt.Errorf("gave up: %w", context.Cause(ctx))
		}
	}
	if err := sleep(w.before); err != nil {
		return err
	}
	done := func() {}
	if w.tellCore {
		done = job.Queued()
	}
	job.Progress(20, "waiting in line")
	if w.joined != nil {
		close(w.joined)
	}
	err := sleep(w.queued)
	done()
	if err != nil {
		return err
	}
	return sleep(w.after)
}

func (w *waiter) Stop(ctx context.Context, sv store.Server) error { return nil }

func TestTimeInAQueueDoesNotCountAgainstTheStartTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	run := func(w *waiter) servers.Event {
		t.Helper()
		return newCoreTimeout(t, t.TempDir(), hubtest.NewUnits(), timeout, w).spawn()
	}

	// Three times the timeout in line, a little work around it: the server starts.
	if ev := run(&waiter{before: 100 * time.Millisecond, queued: 3 * timeout, after: 100 * time.Millisecond, tellCore: true}); !ev.Ready {
		t.Errorf("a spawn that queued longer than the start timeout failed: %s", ev.Message)
	}

	// The same wait without telling the core is work like any other, and times out.
	ev := run(&waiter{queued: 3 * timeout})
	if !ev.Failed || !strings.Contains(ev.Message, "spawner.start_timeout is "+timeout.String()) || !strings.Contains(ev.Message, "deadline exceeded") {
		t.Errorf("an unannounced wait: last event %+v, want the start timeout", ev)
	}

	// The timeout stands still in the queue but is not reset by it: work before and after
	// adds up, and 2 × 250ms of work is over 400ms.
	ev = run(&waiter{before: 250 * time.Millisecond, queued: 2 * timeout, after: 250 * time.Millisecond, tellCore: true})
	if !ev.Failed || !strings.Contains(ev.Message, "spawner.start_timeout") {
		t.Errorf("work before and after the queue over the timeout: last event %+v, want the start timeout", ev)
	}

	// A stop still ends a spawn that waits in line.
	w := &waiter{queued: time.Hour, tellCore: true, joined: make(chan struct{})}
	c := newCoreTimeout(t, t.TempDir(), hubtest.NewUnits(), timeout, w)
	prog, err := c.m.Start(c.user, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-w.joined
	done, err := c.m.Stop(c.server())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stopping a queued spawn did not finish")
	}
	if ev := prog.Last(); !ev.Failed || !strings.Contains(ev.Message, "Spawn cancelled") {
		t.Errorf("stopped while queued: last event %+v, want the spawn cancelled", ev)
	}
}

// keeper is a step with state of its own (like an NFS home shared by a user's servers): it
// notes when the core reconciles it.
type keeper struct {
	recorder
}

func (k *keeper) ReconcileStep(ctx context.Context) error {
	k.log.add("reconcile " + k.name)
	return nil
}

// A step that implements StepReconciler hears from a restarted hub once the running servers are
// adopted again, so it can pick up what it left on the system (a mount waiting to be unmounted).
func TestReconcileReachesStepsWithStateOfTheirOwn(t *testing.T) {
	dir, units := t.TempDir(), hubtest.NewUnits()
	c := newCore(t, dir, units, &recorder{name: "vault", log: &journal{}})
	if ev := c.spawn(); !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}
	log := &journal{}
	restarted := newCore(t, dir, units, &keeper{recorder{name: "home", log: log}})
	if err := restarted.m.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := restarted.m.Route("alice", ""); !ok {
		t.Error("the running server was not adopted before the steps were reconciled")
	}
	if got := log.take(); !slices.Equal(got, []string{"reconcile home"}) {
		t.Errorf("steps saw %q, want one reconcile of the home step", got)
	}
}

// oldLog is a unit manager whose unit logged an hour ago, on its last run.
type oldLog struct {
	*hubtest.Units
	at time.Time
}

func (o oldLog) Journal(ctx context.Context, unit string, lines int, since time.Time) ([]string, error) {
	if since.After(o.at) {
		return nil, nil
	}
	return []string{"last run's marker line"}, nil
}

// A step before the unit that fails (an NFS home) must not show the server's log from its last
// run as if it explained the failure: only what the unit logged since this spawn began counts.
func TestAFailedSpawnShowsOnlyItsOwnLogLines(t *testing.T) {
	c := newCore(t, t.TempDir(), hubtest.NewUnits())
	units := oldLog{hubtest.NewUnits(), time.Now().Add(-time.Hour)}
	c.m = servers.New(context.Background(), c.st, units, []servers.Step{&recorder{name: "home", log: &journal{}, fail: true}, units.Step()}, servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: 20 * time.Second, StopTimeout: 10 * time.Second,
	})
	ev := c.spawn()
	if !ev.Failed || !strings.Contains(ev.Message, "home is out of order") {
		t.Fatalf("last event %+v", ev)
	}
	if strings.Contains(ev.Message, "last run's marker line") {
		t.Errorf("the failure shows the server's log from an earlier run:\n%s", ev.Message)
	}
}

// holder is a step that keeps a value about each server (Job.KeepState) and notes what its stop
// half finds of it.
type holder struct {
	name  string
	log   *journal
	value string
	fail  bool // fail the start after keeping the value
}

func (h *holder) Name() string { return h.name }

func (h *holder) Start(ctx context.Context, job *servers.Job) error {
	if err := job.KeepState(ctx, h.value); err != nil {
		return err
	}
	if h.fail {
		return errors.New(h.name + " failed after keeping its state")
	}
	return nil
}

func (h *holder) Stop(ctx context.Context, sv store.Server) error {
	h.log.add(fmt.Sprintf("stop %s %q", h.name, sv.StepState[h.name]))
	return nil
}

func TestWhatAStepKeepsReachesItsStopHalfAndIsForgottenAfterIt(t *testing.T) {
	dir, units := t.TempDir(), hubtest.NewUnits()
	log := &journal{}
	c := newCore(t, dir, units, &holder{name: "vault", log: log, value: "accessor-1"}, &holder{name: "other", log: log, value: "x"})
	if ev := c.spawn(); !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}
	if got := c.server().StepState; got["vault"] != "accessor-1" || got["other"] != "x" {
		t.Fatalf("stored step state %v", got)
	}

	// A stop while the hub that spawned it is gone: the state came through the store alone.
	units.Stop(context.Background(), "jupyter-alice.service")
	again := newCore(t, dir, units, &holder{name: "vault", log: log}, &holder{name: "other", log: log})
	if err := again.m.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	again.waitStopped()
	if got := log.take(); !slices.Equal(got, []string{`stop other "x"`, `stop vault "accessor-1"`}) {
		t.Errorf("stop halves saw %q", got)
	}
	if got := again.server().StepState; len(got) != 0 {
		t.Errorf("step state left after the stop: %v", got)
	}

	// A spawn that fails after a step kept something: its undo sees it, and it is forgotten.
	failing := newCore(t, dir, units, &holder{name: "vault", log: log, value: "accessor-2"}, &holder{name: "other", log: log, value: "y", fail: true})
	if ev := failing.spawn(); !ev.Failed {
		t.Fatalf("spawn did not fail: %s", ev.Message)
	}
	if got := log.take(); !slices.Equal(got, []string{`stop other "y"`, `stop vault "accessor-2"`}) {
		t.Errorf("undo saw %q", got)
	}
	if got := failing.server().StepState; len(got) != 0 {
		t.Errorf("step state left after the failed spawn: %v", got)
	}
}
