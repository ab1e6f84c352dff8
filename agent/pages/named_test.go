package pages_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// waitFor polls the store until alice's server name is in state ("gone": no record).
func waitFor(t *testing.T, h *hubtest.Hub, user, name, state string) {
	t.Helper()
	ctx := context.Background()
	u, _ := h.Store().GetUser(ctx, user)
	for deadline := time.Now().Add(20 * time.Second); ; {
		sv, err := h.Store().FindServer(ctx, u.ID, name)
		if state == "gone" && err != nil || err == nil && sv.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %q of %s never %s (now %q, %v)", name, user, state, sv.State, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTheHomePageCreatesStartsStopsAndDeletesNamedServers(t *testing.T) {
	h := hubtest.New(t, func(c *config.Config) { c.Hub.AllowNamedServers = true; c.Hub.NamedServerLimitPerUser = 2 })
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	home := alice.get("/hub/home")
	body := string(home.Body)
	if home.Status != 200 || !strings.Contains(body, "Named servers") || !strings.Contains(body, `name="server_name"`) || !strings.Contains(body, "up to 2") {
		t.Fatalf("home page lacks the named servers section with its new-server field:\n%s", body)
	}
	xsrf := string(xsrfField.FindSubmatch(home.Body)[1])

	// The field's name goes to the spawn page, which starts it and sends alice to its progress.
	r := alice.post("/hub/spawn", url.Values{"_xsrf": {xsrf}, "server_name": {"exp"}})
	if r.Status != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/hub/spawn-pending/alice/exp") {
		t.Fatalf("creating exp = %d to %q:\n%s", r.Status, r.Header.Get("Location"), r.Body)
	}
	waitFor(t, h, "alice", "exp", store.Running)
	if p := alice.get(r.Header.Get("Location")); p.Status != http.StatusFound || p.Header.Get("Location") != "/user/alice/exp/" {
		t.Errorf("spawn-pending of a running exp = %d to %q, want its URL", p.Status, p.Header.Get("Location"))
	}
	body = string(alice.get("/hub/home").Body)
	for _, want := range []string{`data-server-name="exp"`, `href="/user/alice/exp/"`, `id="stop-exp"`} {
		if !strings.Contains(body, want) {
			t.Errorf("home with exp running lacks %s", want)
		}
	}
	if strings.Contains(body, `id="delete-exp"`) {
		t.Error("a running server offers delete; JupyterHub offers it once stopped")
	}

	// Stop, then start again from its row, then stop and delete.
	if r := alice.post("/hub/stop", url.Values{"_xsrf": {xsrf}, "server": {"exp"}}); r.Status != http.StatusFound {
		t.Fatalf("stop exp = %d %s", r.Status, r.Body)
	}
	waitFor(t, h, "alice", "exp", store.Stopped)
	body = string(alice.get("/hub/home").Body)
	if !strings.Contains(body, `action="/hub/spawn/alice/exp"`) || !strings.Contains(body, `id="delete-exp"`) {
		t.Errorf("home with exp stopped lacks start and delete:\n%s", body)
	}
	if r := alice.post("/hub/spawn/alice/exp", url.Values{"_xsrf": {xsrf}}); r.Status != http.StatusFound {
		t.Fatalf("start exp again = %d %s", r.Status, r.Body)
	}
	waitFor(t, h, "alice", "exp", store.Running)
	alice.post("/hub/stop", url.Values{"_xsrf": {xsrf}, "server": {"exp"}})
	waitFor(t, h, "alice", "exp", store.Stopped)
	if r := alice.post("/hub/stop", url.Values{"_xsrf": {xsrf}, "server": {"exp"}, "remove": {"1"}}); r.Status != http.StatusFound {
		t.Fatalf("delete exp = %d %s", r.Status, r.Body)
	}
	waitFor(t, h, "alice", "exp", "gone")
	if strings.Contains(string(alice.get("/hub/home").Body), `data-server-name="exp"`) {
		t.Error("home still lists the deleted exp")
	}
}

func TestTheHomePageRefusesNamesAndLimitsClearly(t *testing.T) {
	h := hubtest.New(t, func(c *config.Config) { c.Hub.AllowNamedServers = true; c.Hub.NamedServerLimitPerUser = 1 })
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	xsrf := string(xsrfField.FindSubmatch(alice.get("/hub/home").Body)[1])
	if r := alice.post("/hub/spawn", url.Values{"_xsrf": {xsrf}, "server_name": {"no/slash"}}); r.Status != http.StatusBadRequest {
		t.Errorf("a name with '/' = %d", r.Status)
	}
	if r := alice.post("/hub/spawn", url.Values{"_xsrf": {xsrf}, "server_name": {"one"}}); r.Status != http.StatusFound {
		t.Fatalf("first = %d %s", r.Status, r.Body)
	}
	r := alice.post("/hub/spawn", url.Values{"_xsrf": {xsrf}, "server_name": {"two"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "maximum of 1 named servers") {
		t.Errorf("over the limit = %d:\n%s", r.Status, r.Body)
	}
	waitFor(t, h, "alice", "one", store.Running)
	body := string(alice.get("/hub/home").Body)
	if strings.Contains(body, `name="server_name"`) || !strings.Contains(body, "delete one to make another") {
		t.Errorf("a full home page still offers a new server:\n%s", body)
	}
	// Looking at a server that does not exist makes no record (records count against the limit).
	alice.get("/hub/spawn/alice/ghost")
	u, _ := h.Store().GetUser(context.Background(), "alice")
	if _, err := h.Store().FindServer(context.Background(), u.ID, "ghost"); err == nil {
		t.Error("GET /hub/spawn/alice/ghost created a record")
	}
}

func TestTheHomePageHasNoNamedServersWhileTheyAreOff(t *testing.T) {
	h := hubtest.New(t)
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	if body := string(alice.get("/hub/home").Body); strings.Contains(body, "Named servers") {
		t.Error("home shows named servers while hub.allow_named_servers is off")
	}
	xsrf := string(xsrfField.FindSubmatch(alice.get("/hub/home").Body)[1])
	if r := alice.post("/hub/spawn/alice/gpu", url.Values{"_xsrf": {xsrf}}); r.Status != http.StatusBadRequest {
		t.Errorf("spawning a named server while off = %d", r.Status)
	}
}
