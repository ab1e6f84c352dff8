package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// These pin down named servers (hub.allow_named_servers) against JupyterHub 5.5.1's
// UserServerAPIHandler and user model.

func namedHub(t *testing.T, limit int) *hubtest.Hub {
	return hubtest.New(t, func(c *config.Config) {
		c.Hub.AllowNamedServers = true
		c.Hub.NamedServerLimitPerUser = limit
	})
}

// serversOf is the servers dict of a user's model, as the caller sees it.
func serversOf(t *testing.T, th *hubtest.Hub, token, user string, stopped bool) map[string]map[string]any {
	t.Helper()
	path := "/hub/api/users/" + user
	if stopped {
		path += "?include_stopped_servers"
	}
	r := th.Do("GET", path, token, "")
	var m struct {
		Servers map[string]map[string]any `json:"servers"`
	}
	if r.Status != 200 || json.Unmarshal(r.Body, &m) != nil {
		t.Fatalf("GET %s = %d %s", path, r.Status, r.Body)
	}
	return m.Servers
}

// waitState polls until the named server is in state ("ready", "stopped" or "gone").
func waitState(t *testing.T, th *hubtest.Hub, token, user, server, state string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		sv, ok := serversOf(t, th, token, user, true)[server]
		switch {
		case state == "gone" && !ok:
			return nil
		case ok && state == "ready" && sv["ready"] == true:
			return sv
		case ok && state == "stopped" && sv["stopped"] == true && sv["pending"] == nil:
			return sv
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's server %q never became %s: %v", user, server, state, sv)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNamedServersAreRefusedWhileTheyAreOff(t *testing.T) {
	th := hubtest.New(t)
	alice := th.User("alice", false)
	for _, c := range []struct{ method, path string }{
		{"POST", "/hub/api/users/alice/servers/gpu"},
		{"DELETE", "/hub/api/users/alice/servers/gpu"},
		{"GET", "/hub/api/users/alice/servers/gpu/progress"},
	} {
		r := th.Do(c.method, c.path, alice, "")
		if r.Status != 400 || !strings.Contains(string(r.Body), "Named servers are not enabled") {
			t.Errorf("%s %s = %d %s, want 400 not enabled", c.method, c.path, r.Status, r.Body)
		}
	}
	// The default server's spelling with an empty name still works.
	if r := th.Do("POST", "/hub/api/users/alice/servers/", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Errorf("POST .../servers/ (the default server) = %d %s", r.Status, r.Body)
	}
}

func TestNamedServerStartsStopsAndIsRemoved(t *testing.T) {
	th := namedHub(t, 0)
	alice := th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/server", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Fatalf("start default = %d %s", r.Status, r.Body)
	}
	if r := th.Do("POST", "/hub/api/users/alice/servers/gpu", alice, `{"x": 1}`); r.Status != 201 && r.Status != 202 {
		t.Fatalf("start gpu = %d %s", r.Status, r.Body)
	}
	gpu := waitState(t, th, alice, "alice", "gpu", "ready")
	waitState(t, th, alice, "alice", "", "ready")
	if gpu["name"] != "gpu" || gpu["full_name"] != "alice/gpu" || gpu["url"] != "/user/alice/gpu/" ||
		gpu["progress_url"] != "/hub/api/users/alice/servers/gpu/progress" || gpu["user_options"].(map[string]any)["x"] != 1.0 {
		t.Errorf("gpu's server model = %v", gpu)
	}
	if got := serversOf(t, th, alice, "alice", false); len(got) != 2 || got[""] == nil || got["gpu"] == nil {
		t.Errorf("servers dict = %v, want keys \"\" and \"gpu\"", got)
	}
	if r := th.Do("POST", "/hub/api/users/alice/servers/gpu", alice, ""); r.Status != 400 || !strings.Contains(string(r.Body), "already running") {
		t.Errorf("starting a running named server = %d %s", r.Status, r.Body)
	}

	// Each its own unit; the default server keeps running while gpu stops.
	ctx := context.Background()
	u, _ := th.Store().GetUser(ctx, "alice")
	def, _ := th.Store().FindServer(ctx, u.ID, "")
	named, _ := th.Store().FindServer(ctx, u.ID, "gpu")
	if def.Unit == named.Unit || def.Port == named.Port || !strings.Contains(named.Unit, "gpu") {
		t.Errorf("default and named share a unit or port: %s:%d %s:%d", def.Unit, def.Port, named.Unit, named.Port)
	}
	if r := th.Do("DELETE", "/hub/api/users/alice/servers/gpu", alice, ""); r.Status != 204 && r.Status != 202 {
		t.Fatalf("stop gpu = %d %s", r.Status, r.Body)
	}
	waitState(t, th, alice, "alice", "gpu", "stopped")
	if got := serversOf(t, th, alice, "alice", false); got["gpu"] != nil || got[""] == nil {
		t.Errorf("after stopping gpu, active servers = %v", got)
	}
	// Stopped, it keeps its record (and its options) until removed.
	if r := th.Do("DELETE", "/hub/api/users/alice/servers/gpu", alice, ""); r.Status != 204 {
		t.Errorf("stopping a stopped named server = %d %s", r.Status, r.Body)
	}
	if r := th.Do("DELETE", "/hub/api/users/alice/servers/gpu", alice, `{"remove": true}`); r.Status != 204 && r.Status != 202 {
		t.Fatalf("remove gpu = %d %s", r.Status, r.Body)
	}
	waitState(t, th, alice, "alice", "gpu", "gone")
	for _, c := range []struct{ method, path string }{
		{"DELETE", "/hub/api/users/alice/servers/gpu"},
		{"GET", "/hub/api/users/alice/servers/gpu/progress"},
		{"GET", "/hub/api/users/alice/servers/never/progress"},
	} {
		if r := th.Do(c.method, c.path, alice, ""); r.Status != 404 {
			t.Errorf("%s %s after removal = %d %s, want 404", c.method, c.path, r.Status, r.Body)
		}
	}
	if r := th.Do("DELETE", "/hub/api/users/alice/server", alice, `{"remove": true}`); r.Status != 400 {
		t.Errorf("removing the default server = %d %s, want 400", r.Status, r.Body)
	}
}

func TestARunningNamedServerIsRemovedOnceItStops(t *testing.T) {
	th := namedHub(t, 0)
	alice := th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/servers/tmp", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Fatalf("start = %d %s", r.Status, r.Body)
	}
	waitState(t, th, alice, "alice", "tmp", "ready")
	if r := th.Do("DELETE", "/hub/api/users/alice/servers/tmp", alice, `{"remove": true}`); r.Status != 204 && r.Status != 202 {
		t.Fatalf("remove = %d %s", r.Status, r.Body)
	}
	waitState(t, th, alice, "alice", "tmp", "gone")
	if _, ok := th.Servers().Route("alice", "tmp"); ok {
		t.Error("the removed server is still routed")
	}
}

func TestTheNamedServerLimitCountsRecordsAndRemovingFreesAPlace(t *testing.T) {
	th := namedHub(t, 1)
	alice := th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/servers/one", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Fatalf("first named server = %d %s", r.Status, r.Body)
	}
	waitState(t, th, alice, "alice", "one", "ready")
	r := th.Do("POST", "/hub/api/users/alice/servers/two", alice, "")
	if r.Status != 400 || !strings.Contains(string(r.Body), "maximum of 1 named servers") {
		t.Fatalf("over the limit = %d %s, want a 400 naming the limit", r.Status, r.Body)
	}
	// The default server does not count.
	if r := th.Do("POST", "/hub/api/users/alice/server", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Errorf("default server beside a full set of named ones = %d %s", r.Status, r.Body)
	}
	// A stopped one still holds its place, and may start again.
	th.Do("DELETE", "/hub/api/users/alice/servers/one", alice, "")
	waitState(t, th, alice, "alice", "one", "stopped")
	if r := th.Do("POST", "/hub/api/users/alice/servers/two", alice, ""); r.Status != 400 {
		t.Errorf("a stopped server did not count: %d %s", r.Status, r.Body)
	}
	if r := th.Do("POST", "/hub/api/users/alice/servers/one", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Errorf("restarting an existing named server at the limit = %d %s", r.Status, r.Body)
	}
	waitState(t, th, alice, "alice", "one", "ready")
	th.Do("DELETE", "/hub/api/users/alice/servers/one", alice, `{"remove": true}`)
	waitState(t, th, alice, "alice", "one", "gone")
	if r := th.Do("POST", "/hub/api/users/alice/servers/two", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Errorf("after removing one, a new one = %d %s", r.Status, r.Body)
	}
}

func TestInvalidServerNamesAreRefused(t *testing.T) {
	th := namedHub(t, 0)
	alice := th.User("alice", false)
	for _, name := range []string{".hidden", "a%20b", "%C3%BC", strings.Repeat("x", 65)} {
		if r := th.Do("POST", "/hub/api/users/alice/servers/"+name, alice, ""); r.Status != 400 {
			t.Errorf("POST servers/%s = %d %s, want 400", name, r.Status, r.Body)
		}
	}
	if got := serversOf(t, th, alice, "alice", true); len(got) > 1 {
		t.Errorf("refused names left records: %v", got)
	}
}

func TestServerFilteredScopesReachOnlyThatServer(t *testing.T) {
	th := namedHub(t, 0)
	alice := th.User("alice", false)
	u, _ := th.Store().GetUser(context.Background(), "alice")
	_, tok, err := th.Store().CreateToken(context.Background(), store.Token{UserID: u.ID, Kind: store.KindAPI,
		Scopes: []string{"servers!server=alice/gpu", "read:servers!server=alice/gpu", "read:users:name!user=alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := th.Do("POST", "/hub/api/users/alice/servers/gpu", tok, ""); r.Status != 201 && r.Status != 202 {
		t.Fatalf("start gpu with servers!server=alice/gpu = %d %s", r.Status, r.Body)
	}
	if r := th.Do("POST", "/hub/api/users/alice/servers/cpu", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Fatalf("start cpu = %d %s", r.Status, r.Body)
	}
	waitState(t, th, alice, "alice", "gpu", "ready")
	waitState(t, th, alice, "alice", "cpu", "ready")
	for _, path := range []string{"/hub/api/users/alice/servers/cpu", "/hub/api/users/alice/server"} {
		if r := th.Do("POST", path, tok, ""); r.Status != 404 {
			t.Errorf("POST %s with a scope for alice/gpu only = %d %s, want 404", path, r.Status, r.Body)
		}
	}
	if r := th.Do("GET", "/hub/api/users/alice/servers/cpu/progress", tok, ""); r.Status != 404 {
		t.Errorf("progress of cpu with a scope for gpu = %d", r.Status)
	}
	if got := serversOf(t, th, tok, "alice", false); len(got) != 1 || got["gpu"] == nil {
		t.Errorf("servers dict through read:servers!server=alice/gpu = %v, want gpu alone", got)
	}
	// Bob's own scopes reach none of alice's servers.
	bob := th.User("bob", false)
	if r := th.Do("POST", "/hub/api/users/alice/servers/gpu", bob, ""); r.Status != 404 {
		t.Errorf("bob starting alice's named server = %d", r.Status)
	}
}

func TestNamedServerProgressStreamsTheSpawn(t *testing.T) {
	th := namedHub(t, 0)
	alice := th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/servers/gpu", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Fatalf("start = %d %s", r.Status, r.Body)
	}
	r := th.Do("GET", "/hub/api/users/alice/servers/gpu/progress", alice, "")
	if r.Status != 200 || r.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("progress = %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	body := string(r.Body)
	if !strings.Contains(body, `"ready":true`) || !strings.Contains(body, `/user/alice/gpu/`) {
		t.Errorf("progress of alice/gpu lacks its ready event at /user/alice/gpu/:\n%s", body)
	}
}
