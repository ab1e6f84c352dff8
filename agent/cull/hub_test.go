package cull_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/cull"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// singleUser stands in for jupyterhub-singleuser: it lets a token in as the single-user server
// does (asking the hub's /hub/api/user for the token's scopes), and lists one kernel, busy or not.
func singleUser(th **hubtest.Hub, user string, busy *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/user/"+user+"/api/") {
			w.Write([]byte("<html>JupyterLab</html>"))
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), "GET", (*th).URL+"/hub/api/user", nil)
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var who struct {
			Name   string   `json:"name"`
			Scopes []string `json:"scopes"`
		}
		json.NewDecoder(resp.Body).Decode(&who)
		if resp.StatusCode != 200 || who.Name != user || !slices.ContainsFunc(who.Scopes, func(s string) bool {
			return s == "access:servers!server="+user+"/" || s == "access:servers!user="+user || s == "access:servers"
		}) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		switch strings.TrimPrefix(r.URL.Path, "/user/"+user+"/api/") {
		case "kernels":
			state := "idle"
			if busy != nil && busy.Load() {
				state = "busy"
			}
			json.NewEncoder(w).Encode([]map[string]any{{"id": "k1", "name": "python3", "execution_state": state, "last_activity": "2020-01-01T00:00:00.000000Z"}})
		case "terminals":
			w.Write([]byte("[]"))
		default:
			http.NotFound(w, r)
		}
	})
}

func cullHub(t *testing.T, edit func(*config.Cull)) *hubtest.Hub {
	return hubtest.New(t, func(c *config.Config) {
		c.Cull.Timeout, c.Cull.Every = config.Duration(2*time.Second), config.Duration(time.Second)
		edit(&c.Cull)
	})
}

func running(t *testing.T, th *hubtest.Hub, user string) bool {
	t.Helper()
	_, ok := th.Servers().Route(user, "")
	u, err := th.Store().GetUser(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := th.Store().Server(context.Background(), u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok != (sv.State == store.Running) {
		t.Fatalf("%s's server: routed %v but recorded %s", user, ok, sv.State)
	}
	return ok
}

func TestTheHubStopsAnIdleServerButNotOneInUseOrOneComputing(t *testing.T) {
	var th *hubtest.Hub
	th = cullHub(t, func(*config.Cull) {})
	var busy atomic.Bool
	busy.Store(true)
	th.Serve("alice", singleUser(&th, "alice", nil))
	th.Serve("bob", singleUser(&th, "bob", nil))
	th.Serve("carol", singleUser(&th, "carol", &busy))
	alice, bob := th.Token("alice"), th.Token("bob")

	time.Sleep(1500 * time.Millisecond)
	if r := th.Do("GET", "/user/bob/lab", bob, "", "Sec-Fetch-Mode", "navigate"); r.Status != 200 {
		t.Fatalf("bob's page: %d %s", r.Status, r.Body)
	}
	time.Sleep(700 * time.Millisecond)
	// alice's tab is open and polls, which is no one using the server.
	if r := th.Do("GET", "/user/alice/api/kernels", alice, "", "Sec-Fetch-Mode", "cors"); r.Status != 200 {
		t.Fatalf("alice's tab polling: %d %s", r.Status, r.Body)
	}
	ds := th.Culler().Pass(context.Background(), time.Now())
	if len(ds) != 1 || ds[0].User != "alice" || !strings.Contains(ds[0].Reason, "idle for") {
		t.Fatalf("decisions %+v, want alice's server culled as idle", ds)
	}
	if running(t, th, "alice") || !running(t, th, "bob") || !running(t, th, "carol") {
		t.Errorf("running: alice %v, bob %v, carol %v; want only bob and carol", running(t, th, "alice"), running(t, th, "bob"), running(t, th, "carol"))
	}
	// carol's cell finishes; with nothing else going on her server is idle too.
	busy.Store(false)
	if ds := th.Culler().Pass(context.Background(), time.Now()); len(ds) != 1 || ds[0].User != "carol" {
		t.Errorf("after the cell ended: decisions %+v, want carol culled", ds)
	}
}

func TestTheHubStopsAServerAtMaxAgeEvenInUse(t *testing.T) {
	var th *hubtest.Hub
	th = cullHub(t, func(c *config.Cull) { c.Timeout, c.MaxAge = config.Duration(time.Hour), config.Duration(time.Second) })
	var busy atomic.Bool
	busy.Store(true)
	th.Serve("bob", singleUser(&th, "bob", &busy))
	if ds := th.Culler().Pass(context.Background(), time.Now()); len(ds) != 0 {
		t.Fatalf("a young server: %+v", ds)
	}
	time.Sleep(1100 * time.Millisecond)
	th.Do("PUT", "/user/bob/api/contents/x.ipynb", th.Token("bob"), "{}")
	ds := th.Culler().Pass(context.Background(), time.Now())
	if len(ds) != 1 || !strings.Contains(ds[0].Reason, "cull.max_age") || running(t, th, "bob") {
		t.Errorf("decisions %+v, running %v; want bob's server stopped for its age", ds, running(t, th, "bob"))
	}
}

func TestTheHubInDryRunStopsNothing(t *testing.T) {
	var th *hubtest.Hub
	th = cullHub(t, func(c *config.Cull) { c.DryRun, c.MaxAge = true, config.Duration(time.Second) })
	th.Serve("alice", singleUser(&th, "alice", nil))
	time.Sleep(2100 * time.Millisecond)
	ds := th.Culler().Pass(context.Background(), time.Now())
	if len(ds) != 1 || !ds[0].DryRun || !running(t, th, "alice") {
		t.Errorf("decisions %+v, running %v; want one dry-run decision and the server running", ds, running(t, th, "alice"))
	}
}

func TestTheCullerIsOffWhenDisabled(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Cull.Enabled = false })
	if th.Culler() != nil {
		t.Error("a culler with cull.enabled = false")
	}
	var _ *cull.Culler = th.Culler()
}
