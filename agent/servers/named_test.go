package servers_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

func TestServerNamesThatAreOneSafePathSegment(t *testing.T) {
	for _, ok := range []string{"gpu", "my-server", "exp_2", "v1.2", "a~b", "X", strings.Repeat("a", 64)} {
		if err := servers.ValidServerName(ok); err != nil {
			t.Errorf("servers.ValidServerName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "/", ".", "..", ".hidden", "with space", "ü", "a%2Fb", "a?b", "a#b", strings.Repeat("a", 65)} {
		if err := servers.ValidServerName(bad); err == nil {
			t.Errorf("servers.ValidServerName(%q) accepted", bad)
		}
	}
}

// namedCore runs a core over the store in dir (reopened, as after a hub restart) with named
// servers allowed up to limit.
func namedCore(t *testing.T, dir string, units *hubtest.Units, limit int) (*servers.Manager, *store.Store, store.User) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := servers.New(context.Background(), st, units, []servers.Step{units.Step()}, servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + "-" + server + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: 20 * time.Second, StopTimeout: 10 * time.Second,
		Named: servers.NamedServers{Allow: true, Limit: limit},
	})
	u, err := st.GetUser(context.Background(), "alice")
	if errors.Is(err, store.ErrNotFound) {
		u, err = st.CreateUser(context.Background(), "alice", false)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m, st, u
}

func TestNamedServersRunSideBySideAndAreAdoptedAfterARestart(t *testing.T) {
	dir, units := t.TempDir(), hubtest.NewUnits()
	m, st, u := namedCore(t, dir, units, 0)
	for _, name := range []string{"one", "two"} {
		prog, err := m.Start(u, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		<-prog.Finished()
		if ev := prog.Last(); !ev.Ready || ev.URL != "/user/alice/"+name+"/" {
			t.Fatalf("spawn of %s: %+v", name, ev)
		}
	}
	one, _ := m.Route("alice", "one")
	two, _ := m.Route("alice", "two")
	if one.Port == two.Port || one.ServerID == two.ServerID {
		t.Fatalf("routes share a port or server: %+v %+v", one, two)
	}
	if _, ok := m.Route("alice", ""); ok {
		t.Error("the default server is routed without having started")
	}

	restarted, _, _ := namedCore(t, dir, units, 0)
	if err := restarted.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]servers.Route{"one": one, "two": two} {
		if got, ok := restarted.Route("alice", name); !ok || got != want {
			t.Errorf("after the restart %s is routed %v %+v, want %+v", name, ok, got, want)
		}
	}
	sv, _ := st.FindServer(context.Background(), u.ID, "one")
	done, err := restarted.Remove(sv)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := st.FindServer(context.Background(), u.ID, "one"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removed server's record: %v", err)
	}
	if _, ok := restarted.Route("alice", "two"); !ok {
		t.Error("removing one unrouted two")
	}
}

func TestTheCoreRefusesNamedServersWhenOffOrOverTheLimit(t *testing.T) {
	dir, units := t.TempDir(), hubtest.NewUnits()
	m, _, u := namedCore(t, dir, units, 1)
	if _, err := m.Start(u, "bad/name", nil); !errors.Is(err, servers.ErrConflict) {
		t.Errorf("a name with '/' = %v", err)
	}
	prog, err := m.Start(u, "one", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-prog.Finished()
	if _, err := m.Start(u, "two", nil); !errors.Is(err, servers.ErrConflict) || !strings.Contains(err.Error(), "maximum of 1") {
		t.Errorf("over the limit = %v", err)
	}
	if _, err := m.Remove(store.Server{Name: ""}); err == nil {
		t.Error("the default server was removable")
	}
	off := servers.New(context.Background(), nil, units, nil, servers.Options{})
	if _, err := off.Start(u, "one", nil); !errors.Is(err, servers.ErrConflict) || !strings.Contains(err.Error(), "not enabled") {
		t.Errorf("named server with named servers off = %v", err)
	}
}
