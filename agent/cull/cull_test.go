package cull

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// fakeCore records stops and hands out the activity a test sets.
type fakeCore struct {
	mu       sync.Mutex
	stopped  []string
	activity map[int64]servers.Activity
}

func (f *fakeCore) Stop(sv store.Server) (<-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, sv.UserName+"/"+sv.Name)
	done := make(chan struct{})
	close(done)
	return done, nil
}

func (f *fakeCore) Activity(id int64) servers.Activity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.activity[id]
}

// fakeKernels answers what a test sets per user.
type fakeKernels map[string]Work

func (k fakeKernels) Work(ctx context.Context, sv store.Server) (Work, error) {
	w, ok := k[sv.UserName]
	if !ok {
		return Work{}, errors.New("connection refused")
	}
	return w, nil
}

type fixture struct {
	t     *testing.T
	st    *store.Store
	core  *fakeCore
	t0    time.Time
	ids   map[string]int64
	admin map[string]bool
}

func newFixture(t *testing.T) *fixture {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{t: t, st: st, core: &fakeCore{activity: map[int64]servers.Activity{}}, t0: time.Now(), ids: map[string]int64{}}
}

// running records a server of user (created if need be) that started at started.
func (f *fixture) running(user, name string, admin bool, started time.Time) store.Server {
	f.t.Helper()
	ctx := context.Background()
	u, err := f.st.GetUser(ctx, user)
	if err != nil {
		if u, err = f.st.CreateUser(ctx, user, admin); err != nil {
			f.t.Fatal(err)
		}
	}
	sv, err := f.st.Server(ctx, u.ID, name)
	if err != nil {
		f.t.Fatal(err)
	}
	sv.State, sv.Started, sv.Port, sv.Unit = store.Running, started, 50000+int(sv.ID), "jupyter-"+user
	if err := f.st.SaveServer(ctx, sv); err != nil {
		f.t.Fatal(err)
	}
	f.ids[user+"/"+name] = sv.ID
	return sv
}

func (f *fixture) culler(k Kernels, o Options) *Culler {
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.Timeout == 0 {
		o.Timeout = time.Hour
	}
	c := New(f.st, f.core, k, o)
	c.since = f.t0
	return c
}

func stoppedOf(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		if !d.RemovedUser {
			out = append(out, d.User+"/"+d.Server)
		}
	}
	slices.Sort(out)
	return out
}

func TestAServerIdleLongerThanTheTimeoutIsStoppedAndOneInUseIsNot(t *testing.T) {
	f := newFixture(t)
	f.running("idle", "", false, f.t0)
	f.running("typing", "", false, f.t0)
	f.running("computing", "", false, f.t0)
	f.core.activity[f.ids["typing/"]] = servers.Activity{Interaction: f.t0.Add(50 * time.Minute)}
	k := fakeKernels{
		"idle":      {Last: f.t0.Add(time.Minute)},
		"typing":    {},
		"computing": {Last: f.t0.Add(time.Minute), Busy: true}, // a cell that sleeps: no messages since
	}
	c := f.culler(k, Options{})
	if got := stoppedOf(c.Pass(context.Background(), f.t0.Add(59*time.Minute))); len(got) != 0 {
		t.Errorf("before the timeout: culled %v", got)
	}
	got := stoppedOf(c.Pass(context.Background(), f.t0.Add(90*time.Minute)))
	if !slices.Equal(got, []string{"idle/"}) || !slices.Equal(f.core.stopped, []string{"idle/"}) {
		t.Errorf("culled %v, stopped %v; want only idle/", got, f.core.stopped)
	}
}

func TestAnOpenTabAloneIsNotActivityUnlessConfigured(t *testing.T) {
	f := newFixture(t)
	f.running("tab", "", false, f.t0)
	sv, _ := f.st.ServerByID(context.Background(), f.ids["tab/"])
	// The tab polls: the router sees traffic and the server reports activity, all recent.
	f.st.TouchServer(context.Background(), sv.ID, f.t0.Add(89*time.Minute))
	f.core.activity[sv.ID] = servers.Activity{Traffic: f.t0.Add(89 * time.Minute)}
	k := fakeKernels{"tab": {Last: f.t0.Add(time.Minute)}}
	now := f.t0.Add(90 * time.Minute)
	if got := stoppedOf(f.culler(k, Options{OpenTabsAreActivity: true}).Pass(context.Background(), now)); len(got) != 0 {
		t.Errorf("with open_tabs_are_activity: culled %v", got)
	}
	if got := stoppedOf(f.culler(k, Options{}).Pass(context.Background(), now)); !slices.Equal(got, []string{"tab/"}) {
		t.Errorf("without: culled %v, want tab/", got)
	}
}

func TestAServerThatCannotBeAskedIsJudgedByItsActivityReports(t *testing.T) {
	f := newFixture(t)
	f.running("quiet", "", false, f.t0)
	f.running("reporting", "", false, f.t0)
	f.st.TouchServer(context.Background(), f.ids["reporting/"], f.t0.Add(80*time.Minute))
	got := stoppedOf(f.culler(fakeKernels{}, Options{}).Pass(context.Background(), f.t0.Add(90*time.Minute)))
	if !slices.Equal(got, []string{"quiet/"}) {
		t.Errorf("culled %v, want quiet/", got)
	}
}

func TestMaxAgeStopsEvenABusyServer(t *testing.T) {
	f := newFixture(t)
	f.running("old", "", true, f.t0) // an admin's, and admins' idle servers are exempt: max_age is not
	f.running("young", "", false, f.t0.Add(time.Hour))
	k := fakeKernels{"old": {Busy: true}, "young": {Busy: true}}
	ds := f.culler(k, Options{Timeout: time.Hour, MaxAge: 2 * time.Hour}).Pass(context.Background(), f.t0.Add(2*time.Hour+time.Second))
	if got := stoppedOf(ds); !slices.Equal(got, []string{"old/"}) {
		t.Fatalf("culled %v, want old/", got)
	}
	if !strings.Contains(ds[0].Reason, "cull.max_age") {
		t.Errorf("reason %q does not name cull.max_age", ds[0].Reason)
	}
}

func TestDryRunStopsNothingAndSaysWhatItWouldCull(t *testing.T) {
	f := newFixture(t)
	f.running("idle", "", false, f.t0)
	ds := f.culler(fakeKernels{"idle": {}}, Options{DryRun: true}).Pass(context.Background(), f.t0.Add(2*time.Hour))
	if len(f.core.stopped) != 0 {
		t.Errorf("dry run stopped %v", f.core.stopped)
	}
	if len(ds) != 1 || !ds[0].DryRun || !strings.Contains(ds[0].Reason, "idle for") {
		t.Errorf("decisions %+v", ds)
	}
}

func TestAdminsAndNamedServersAreExemptWhenConfigured(t *testing.T) {
	f := newFixture(t)
	f.running("root", "", true, f.t0)
	f.running("bob", "", false, f.t0)
	f.running("bob", "gpu", false, f.t0)
	k := fakeKernels{"root": {}, "bob": {}}
	now := f.t0.Add(2 * time.Hour)
	got := stoppedOf(f.culler(k, Options{}).Pass(context.Background(), now))
	if !slices.Equal(got, []string{"bob/"}) {
		t.Errorf("culled %v, want bob/ alone", got)
	}
	f2 := newFixture(t)
	f2.running("root", "", true, f2.t0)
	f2.running("bob", "gpu", false, f2.t0)
	got = stoppedOf(f2.culler(k, Options{CullAdminServers: true, CullNamedServers: true}).Pass(context.Background(), f2.t0.Add(2*time.Hour)))
	if !slices.Equal(got, []string{"bob/gpu", "root/"}) {
		t.Errorf("culled %v, want bob/gpu and root/", got)
	}
}

func TestAHubRestartDoesNotMakeOldServersIdleAtOnce(t *testing.T) {
	f := newFixture(t)
	f.running("alice", "", false, f.t0.Add(-10*time.Hour)) // adopted: the hub knows nothing of its use
	c := f.culler(fakeKernels{"alice": {}}, Options{})
	if got := stoppedOf(c.Pass(context.Background(), f.t0.Add(time.Minute))); len(got) != 0 {
		t.Errorf("right after the restart: culled %v", got)
	}
	if got := stoppedOf(c.Pass(context.Background(), f.t0.Add(61*time.Minute))); len(got) != 1 {
		t.Errorf("a timeout after the restart: culled %v, want alice/", got)
	}
}

func TestUsersWithoutServersAreRemovedOnlyWhenConfigured(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, n := range []string{"gone", "boss"} {
		if _, err := f.st.CreateUser(ctx, n, n == "boss"); err != nil {
			t.Fatal(err)
		}
	}
	f.running("busy", "", false, f.t0)
	k := fakeKernels{"busy": {Busy: true}}
	later := time.Now().Add(2 * time.Hour)
	if ds := f.culler(k, Options{}).Pass(ctx, later); len(ds) != 0 {
		t.Errorf("remove_users off: %+v", ds)
	}
	ds := f.culler(k, Options{RemoveUsers: true}).Pass(ctx, later)
	if len(ds) != 1 || !ds[0].RemovedUser || ds[0].User != "gone" {
		t.Fatalf("decisions %+v, want gone removed", ds)
	}
	if _, err := f.st.GetUser(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("gone is still there: %v", err)
	}
	for _, n := range []string{"boss", "busy"} {
		if _, err := f.st.GetUser(ctx, n); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}

func TestConcurrencyBoundsTheServersAskedAtOnce(t *testing.T) {
	f := newFixture(t)
	k := &countingKernels{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		f.running(n, "", false, f.t0)
	}
	f.culler(k, Options{Concurrency: 2}).Pass(context.Background(), f.t0.Add(time.Minute))
	if k.max != 2 {
		t.Errorf("at most %d servers asked at once, want 2", k.max)
	}
}

type countingKernels struct {
	mu       sync.Mutex
	now, max int
}

func (k *countingKernels) Work(ctx context.Context, sv store.Server) (Work, error) {
	k.mu.Lock()
	k.now++
	k.max = max(k.max, k.now)
	k.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	k.mu.Lock()
	k.now--
	k.mu.Unlock()
	return Work{}, nil
}
