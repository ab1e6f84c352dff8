package nfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// fakeSystemd stands in for systemd over D-Bus: mount units mount into its mount table, check
// units end as told, and other units (servers) need the mounts their RequiresMountsFor names.
type fakeSystemd struct {
	mu     sync.Mutex
	units  map[string]map[string]any
	mounts []Mount
	calls  []string

	mountFails  string // "" mounts; else the unit's Result, with journal as its log
	journal     []string
	checkFails  bool
	umountBusy  bool
	probeRefuse bool
}

func newFake() *fakeSystemd { return &fakeSystemd{units: map[string]map[string]any{}} }

func (f *fakeSystemd) call(s string) { f.calls = append(f.calls, s) }

// took returns the calls since the last take.
func (f *fakeSystemd) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

func (f *fakeSystemd) StartTransientUnitContext(ctx context.Context, name, mode string, props []sd.Property, ch chan<- string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("start " + name)
	if _, ok := f.units[name]; ok {
		return 0, dbus.Error{Name: "org.freedesktop.systemd1.UnitExists"}
	}
	p := map[string]any{"LoadState": "loaded", "Transient": true}
	for _, pr := range props {
		p[pr.Name] = pr.Value.Value()
	}
	switch {
	case strings.HasSuffix(name, ".mount") && f.mountFails != "":
		p["ActiveState"], p["Result"] = "failed", f.mountFails
		f.units[name] = p
		ch <- "failed"
	case strings.HasSuffix(name, ".mount"):
		p["ActiveState"], p["Result"] = "active", "success"
		f.units[name] = p
		f.mounts = append(f.mounts, Mount{ID: 100 + len(f.mounts), Point: p["Where"].(string), FSType: "nfs4", Source: p["What"].(string)})
		ch <- "done"
	case f.checkFails:
		p["ActiveState"], p["Result"], p["ExecMainStatus"] = "failed", "exit-code", int32(200)
		f.units[name] = p
		ch <- "failed"
	default:
		ch <- "done" // a oneshot that succeeded is collected at once
	}
	return 1, nil
}

func (f *fakeSystemd) StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("start-existing " + name)
	ch <- "done"
	return 1, nil
}

func (f *fakeSystemd) StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("stop " + name)
	p, ok := f.units[name]
	if !ok {
		return 0, dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit"}
	}
	if strings.HasSuffix(name, ".mount") {
		if f.umountBusy {
			ch <- "failed"
			return 1, nil
		}
		f.mounts = slices.DeleteFunc(f.mounts, func(m Mount) bool { return m.Point == p["Where"] })
	}
	delete(f.units, name)
	ch <- "done"
	return 1, nil
}

func (f *fakeSystemd) ResetFailedUnitContext(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.units[name]
	if !ok {
		return dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit"}
	}
	if p["ActiveState"] == "failed" {
		f.call("reset " + name)
		delete(f.units, name)
	}
	return nil
}

func (f *fakeSystemd) GetAllPropertiesContext(ctx context.Context, name string) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.units[name]
	if !ok {
		return map[string]any{"LoadState": "not-found", "ActiveState": "inactive"}, nil
	}
	out := map[string]any{}
	for k, v := range p {
		out[k] = v
	}
	if where, ok := p["Where"].(string); ok { // the reverse of RequiresMountsFor=, as systemd keeps it
		var by []string
		for other, op := range f.units {
			if needs, _ := op["RequiresMountsFor"].([]string); slices.Contains(needs, where) {
				by = append(by, other)
			}
		}
		out["RequiredBy"], out["Before"] = by, append([]string{"umount.target"}, by...)
	}
	return out, nil
}

func (f *fakeSystemd) status(name string) sd.UnitStatus {
	p, ok := f.units[name]
	if !ok {
		return sd.UnitStatus{Name: name, LoadState: "not-found", ActiveState: "inactive"}
	}
	desc, _ := p["Description"].(string)
	active, _ := p["ActiveState"].(string)
	return sd.UnitStatus{Name: name, Description: desc, LoadState: "loaded", ActiveState: active}
}

func (f *fakeSystemd) ListUnitsByPatternsContext(ctx context.Context, states, patterns []string) ([]sd.UnitStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sd.UnitStatus
	for name := range f.units {
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, name); ok {
				if st := f.status(name); len(states) == 0 || slices.Contains(states, st.ActiveState) {
					out = append(out, st)
				}
			}
		}
	}
	return out, nil
}

func (f *fakeSystemd) ListUnitsByNamesContext(ctx context.Context, names []string) ([]sd.UnitStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sd.UnitStatus
	for _, n := range names {
		out = append(out, f.status(n))
	}
	return out, nil
}

// runServer and stopServer play the unit step: a server unit that needs the home.
func (f *fakeSystemd) runServer(unit, home string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.units[unit] = map[string]any{"LoadState": "loaded", "ActiveState": "active", "RequiresMountsFor": []string{home}}
}

func (f *fakeSystemd) stopServer(unit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.units, unit)
}

func (f *fakeSystemd) mounted(where string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := mountAt(f.mounts, where)
	return ok
}

func (f *fakeSystemd) leftovers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name := range f.units {
		if !strings.HasPrefix(name, "jupyter-") {
			out = append(out, name)
		}
	}
	for _, m := range f.mounts {
		if m.FSType == "nfs4" {
			out = append(out, "mount "+m.Point)
		}
	}
	return out
}

const grace = 150 * time.Millisecond

func newTestStep(f *fakeSystemd) *Step {
	s := NewStep(f, Options{
		Server: "nas", Export: "/srv/homes", What: "{SERVER}:{EXPORT}/{USERNAME}", Where: "{HOME}",
		MountOptions: "rw,hard", MountTimeout: 2 * time.Second, UnmountAfter: grace, MinUID: 1000,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.lookup = func(name string) (account, error) {
		uid := map[string]int{"alice": 1001, "bob": 1002, "root": 0, "daemon": 1}[name]
		return account{Name: name, UID: uid, Home: "/home/" + name}, nil
	}
	s.mountinfo = func() ([]Mount, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Clone(f.mounts), nil
	}
	s.stat = func(string) (int, fs.FileMode, error) { return 1003, fs.ModeDir | 0o700, nil }
	s.journal = func(context.Context, string, time.Time) ([]string, error) { return f.journal, nil }
	s.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if f.probeRefuse {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		c, other := net.Pipe()
		other.Close()
		return c, nil
	}
	s.poll = 2 * grace
	return s
}

var alicesServer = store.Server{ID: 7, UserName: "alice", Unit: "jupyter-alice.service"}

// spawn runs the step's start half for sv and, if it worked, the server's unit.
func spawn(t *testing.T, s *Step, f *fakeSystemd, sv store.Server) (*servers.Job, error) {
	t.Helper()
	job := servers.NewJob(store.User{Name: sv.UserName}, sv)
	err := s.Start(context.Background(), job)
	if err == nil {
		f.runServer(sv.Unit, "/home/"+sv.UserName)
	}
	return job, err
}

// stop runs the unit step's stop and then the nfs step's, as the core does.
func stop(t *testing.T, s *Step, f *fakeSystemd, sv store.Server) {
	t.Helper()
	f.stopServer(sv.Unit)
	if err := s.Stop(context.Background(), sv); err != nil {
		t.Fatalf("stop half: %v", err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartMountsChecksAsTheUserAndOrdersTheServer(t *testing.T) {
	f := newFake()
	s := newTestStep(f)
	job, err := spawn(t, s, f, alicesServer)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.took(); !slices.Equal(got, []string{"start home-alice.mount", "start jupyterhub-go-nfs-check-alice.service"}) {
		t.Errorf("systemd calls %q, want the mount, then the check", got)
	}
	if !slices.Equal(job.RequiresMounts, []string{"/home/alice"}) {
		t.Errorf("RequiresMounts = %q: the server would not wait for its home", job.RequiresMounts)
	}
	m := f.units["home-alice.mount"]
	for k, want := range map[string]any{
		"What": "nas:/srv/homes/alice", "Where": "/home/alice", "Type": "nfs4", "Options": "rw,hard",
		"TimeoutUSec": uint64(2e6), "Description": "jupyterhub-go: NFS home of alice",
	} {
		if m[k] != want {
			t.Errorf("mount unit %s = %v, want %v", k, m[k], want)
		}
	}
}

func TestTheCheckRunsAsTheUserInTheHome(t *testing.T) {
	// A failed check unit stays until it is reset: keep it, to read what it was made with.
	f := newFake()
	f.checkFails = true
	s := newTestStep(f)
	s.sys = keepFailed{f}
	spawn(t, s, f, alicesServer)
	p := f.units["jupyterhub-go-nfs-check-alice.service"]
	if p["User"] != "alice" || p["WorkingDirectory"] != "/home/alice" || !slices.Equal(p["RequiresMountsFor"].([]string), []string{"/home/alice"}) {
		t.Errorf("check unit: User=%v WorkingDirectory=%v RequiresMountsFor=%v", p["User"], p["WorkingDirectory"], p["RequiresMountsFor"])
	}
	if argv := fmt.Sprint(p["ExecStart"]); !strings.Contains(argv, "test -r . && test -w . && test -x .") {
		t.Errorf("check command %v", argv)
	}
}

// keepFailed is a fake that never resets a failed unit.
type keepFailed struct{ *fakeSystemd }

func (keepFailed) ResetFailedUnitContext(context.Context, string) error { return nil }

// The mount stays while the user has a server, is kept across a restart of the server within
// nfs.unmount_after (the next start reuses it), and goes that long after the last one stopped.
func TestUnmountedOnlyAfterTheLastServerAndTheGrace(t *testing.T) {
	f := newFake()
	s := newTestStep(f)
	if _, err := spawn(t, s, f, alicesServer); err != nil {
		t.Fatal(err)
	}
	f.took()
	stop(t, s, f, alicesServer)
	if !f.mounted("/home/alice") {
		t.Fatal("unmounted at once, before nfs.unmount_after")
	}
	// Restarted within the grace: the same mount, no second one, and no unmount under it.
	if _, err := spawn(t, s, f, alicesServer); err != nil {
		t.Fatal(err)
	}
	if got := f.took(); slices.Contains(got, "start home-alice.mount") {
		t.Errorf("the restart mounted again: %q", got)
	}
	time.Sleep(3 * grace)
	if !f.mounted("/home/alice") {
		t.Fatal("the mount went while a server used it")
	}
	stop(t, s, f, alicesServer)
	eventually(t, "unmount after the grace", func() bool { return !f.mounted("/home/alice") })
	if left := f.leftovers(); len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
}

// A unit outside the hub that needs the home (or a server of another hub) keeps it mounted past
// the grace; once it is gone, the home is unmounted.
func TestNeverUnmountedUnderAUnitThatNeedsIt(t *testing.T) {
	f := newFake()
	s := newTestStep(f)
	spawn(t, s, f, alicesServer)
	f.runServer("backup-alice.service", "/home/alice")
	stop(t, s, f, alicesServer)
	time.Sleep(3 * grace)
	if !f.mounted("/home/alice") {
		t.Fatal("unmounted although backup-alice.service needs it")
	}
	f.stopServer("backup-alice.service")
	eventually(t, "unmount once the last unit is gone", func() bool { return !f.mounted("/home/alice") })
}

// A hub killed with an unmount pending forgets the timer; the next one finds the mount by its
// unit and arms it again, and it never unmounts under a server it adopted.
func TestARestartedHubUnmountsWhatTheLastOneLeft(t *testing.T) {
	f := newFake()
	first := newTestStep(f)
	bob := store.Server{ID: 8, UserName: "bob", Unit: "jupyter-bob.service"}
	spawn(t, first, f, alicesServer)
	spawn(t, first, f, bob)
	f.stopServer(bob.Unit) // bob's server stops with the hub gone: nobody ran the stop half

	again := newTestStep(f) // nothing in memory
	if err := again.ReconcileStep(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's home unmounted by the restarted hub", func() bool { return !f.mounted("/home/bob") })
	time.Sleep(3 * grace)
	if !f.mounted("/home/alice") {
		t.Fatal("alice's home went under her adopted server")
	}
	// Her server stops through the new hub, which never started it: the stop half finds the
	// mount from the record alone.
	stop(t, again, f, alicesServer)
	eventually(t, "alice's home unmounted", func() bool { return !f.mounted("/home/alice") })
}

// A home mounted by someone else (fstab, autofs, by hand) is used and never unmounted.
func TestMountsOfOthersAreLeftAlone(t *testing.T) {
	for name, m := range map[string]Mount{
		"fstab":  {Point: "/home/alice", FSType: "nfs4", Source: "nas:/homes/alice"},
		"autofs": {Point: "/home", FSType: "autofs", Source: "/etc/auto.home"},
	} {
		f := newFake()
		f.mounts = []Mount{m}
		s := newTestStep(f)
		job, err := spawn(t, s, f, alicesServer)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := f.took(); !slices.Equal(got, []string{"start jupyterhub-go-nfs-check-alice.service"}) {
			t.Errorf("%s: systemd calls %q, want only the check", name, got)
		}
		if !slices.Equal(job.RequiresMounts, []string{"/home/alice"}) {
			t.Errorf("%s: RequiresMounts = %q", name, job.RequiresMounts)
		}
		stop(t, s, f, alicesServer)
		time.Sleep(2 * grace)
		if got := f.took(); slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "stop ") }) {
			t.Errorf("%s: the hub stopped something it did not mount: %q", name, got)
		}
	}
}

// Every failure says what it is and leaves no unit and no mount behind.
func TestFailuresLeaveNothingBehind(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*fakeSystemd)
		kind error
	}{
		{"export missing", func(f *fakeSystemd) {
			f.mountFails = "exit-code"
			f.journal = []string{"mount.nfs4: mounting nas:/srv/homes/alice failed, reason given by server: No such file or directory"}
		}, ErrExportMissing},
		{"server refuses connections", func(f *fakeSystemd) { f.probeRefuse = true }, ErrUnreachable},
		{"mount times out", func(f *fakeSystemd) { f.mountFails = "timeout" }, ErrTimeout},
		{"home not hers", func(f *fakeSystemd) { f.checkFails = true }, ErrPermission},
	} {
		f := newFake()
		c.set(f)
		s := newTestStep(f)
		job, err := spawn(t, s, f, alicesServer)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want %v", c.name, err, c.kind)
		}
		if len(job.RequiresMounts) != 0 {
			t.Errorf("%s: a failed start still named its mount", c.name)
		}
		// The core then runs the stop half as its undo.
		stop(t, s, f, alicesServer)
		if left := f.leftovers(); len(left) != 0 {
			t.Errorf("%s: left behind %q", c.name, left)
		}
	}
}

func TestRootAndSystemAccountsGetNoMount(t *testing.T) {
	f := newFake()
	s := newTestStep(f)
	for _, name := range []string{"root", "daemon"} {
		if _, err := spawn(t, s, f, store.Server{ID: 1, UserName: name, Unit: "jupyter-" + name + ".service"}); err == nil {
			t.Errorf("%s got a mount", name)
		}
	}
	if got := f.took(); len(got) != 0 {
		t.Errorf("systemd was asked %q", got)
	}
}
