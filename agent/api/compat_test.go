package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Each test here is a place where a JupyterHub client (the stock idle culler, JupyterHub's admin
// page, curl scripts) met a different answer than JupyterHub 5.5.1 gives.

func TestPaginationNextIsAFullURLTheIdleCullerCanFetch(t *testing.T) {
	for _, public := range []string{"", "https://hub.example.org"} {
		th := hubtest.New(t, func(c *config.Config) { c.Hub.PublicURL = public })
		admin := th.User("admin", true)
		for _, n := range []string{"a", "b", "c"} {
			th.User(n, false)
		}
		r := th.Do("GET", "/hub/api/users?limit=2", admin, "", "Accept", "application/jupyterhub-pagination+json")
		next, _ := r.JSON(t)["_pagination"].(map[string]any)["next"].(map[string]any)
		u, err := url.Parse(next["url"].(string))
		want := strings.TrimPrefix(th.URL, "http://")
		if public != "" {
			want = "hub.example.org"
		}
		if err != nil || u.Host != want || (u.Scheme != "http" && u.Scheme != "https") || u.Query().Get("offset") != "2" {
			t.Errorf("public_url %q: next.url = %v, want an absolute URL on %s", public, next["url"], want)
		}
	}
}

func TestAnAdminCreatesATokenForAnotherUser(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	th.User("alice", false)
	r := th.Do("POST", "/hub/api/users/alice/tokens", admin, `{"note": "for alice"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("admin creating alice's token = %d %s", r.Status, r.Body)
	}
	if who := th.Do("GET", "/hub/api/user", r.JSON(t)["token"].(string), "").JSON(t)["name"]; who != "alice" {
		t.Errorf("the token belongs to %v", who)
	}
}

// `curl -d '{...}'` sends application/x-www-form-urlencoded; with a token that is still JSON.
func TestATokenRequestsJSONWhateverItsContentType(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	r := th.Do("POST", "/hub/api/users/carol", admin, `{"admin": false}`, "Content-Type", "application/x-www-form-urlencoded")
	if r.Status != http.StatusCreated {
		t.Errorf("token + form content type = %d %s, want 201", r.Status, r.Body)
	}
	// With the cookie it must really be JSON: a form from another page is not an API call.
	page := th.Login("admin")
	r = th.Do("POST", "/hub/api/users/dave", "", `{"admin": false}`, "Content-Type", "text/plain",
		"Cookie", page.Name+"="+page.Value, "X-XSRFToken", xsrfOf(t, th, page))
	if r.Status != http.StatusUnsupportedMediaType {
		t.Errorf("cookie + text/plain = %d, want 415", r.Status)
	}
}

func xsrfOf(t *testing.T, th *hubtest.Hub, c *http.Cookie) string {
	t.Helper()
	home := th.Do("GET", "/hub/home", "", "", "Cookie", c.Name+"="+c.Value)
	i := strings.Index(string(home.Body), `name="_xsrf" value="`)
	if i < 0 {
		t.Fatalf("no XSRF token on the home page: %s", home.Body)
	}
	rest := string(home.Body)[i+len(`name="_xsrf" value="`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// JupyterHub's own admin page starts and stops the default server as /servers/ (empty name).
func TestTheDefaultServerAnswersUnderServersSlash(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/servers/", admin, ""); r.Status != http.StatusCreated && r.Status != http.StatusAccepted {
		t.Fatalf("POST /users/alice/servers/ = %d %s", r.Status, r.Body)
	}
	if r := th.Do("DELETE", "/hub/api/users/alice/servers/", admin, ""); r.Status != http.StatusNoContent && r.Status != http.StatusAccepted {
		t.Errorf("DELETE /users/alice/servers/ = %d %s", r.Status, r.Body)
	}
	waitFor(t, "alice's server to stop", func() bool {
		m := th.Do("GET", "/hub/api/users/alice", admin, "").JSON(t)
		return m["server"] == nil && m["pending"] == nil
	})
	if r := th.Do("DELETE", "/hub/api/users/alice/server", admin, ""); r.Status != http.StatusNoContent {
		t.Errorf("stopping a stopped server = %d, want 204", r.Status)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTokenExpiry(t *testing.T) {
	th := hubtest.New(t)
	alice := th.User("alice", false)
	r := th.Do("POST", "/hub/api/users/alice/tokens", alice, `{"expires_in": 0}`)
	if r.Status != http.StatusCreated || r.JSON(t)["expires_at"] != nil {
		t.Errorf("expires_in 0 = %d %s, want a token that never expires", r.Status, r.Body)
	}
	for _, bad := range []string{"-5", "9223372036854775807"} {
		if r := th.Do("POST", "/hub/api/users/alice/tokens", alice, `{"expires_in": `+bad+`}`); r.Status != http.StatusBadRequest {
			t.Errorf("expires_in %s = %d, want 400", bad, r.Status)
		}
	}
}

// JupyterHub lets a script without a token get one with the user's password.
func TestATokenCanBeRequestedWithAPassword(t *testing.T) {
	th := hubtest.New(t)
	th.User("alice", false)
	th.SetPassword("alice", "pw")
	r := th.Do("POST", "/hub/api/users/alice/tokens", "", `{"auth": {"username": "alice", "password": "pw"}, "note": "script"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("token with username and password = %d %s", r.Status, r.Body)
	}
	if r := th.Do("POST", "/hub/api/users/alice/tokens", "", `{"auth": {"username": "alice", "password": "wrong"}}`); r.Status != http.StatusForbidden {
		t.Errorf("wrong password = %d, want 403", r.Status)
	}
	th.User("bob", false)
	if r := th.Do("POST", "/hub/api/users/bob/tokens", "", `{"auth": {"username": "alice", "password": "pw"}}`); r.Status == http.StatusCreated {
		t.Error("alice's password made a token for bob")
	}
}

func TestAFilteredTokenPagesThroughItsOwnUsers(t *testing.T) {
	th := hubtest.New(t)
	th.User("admin", true)
	ctx := context.Background()
	staff := []string{"staff"}
	for _, n := range []string{"a1", "a2", "s1", "a3", "s2", "a4"} {
		th.User(n, false)
		if strings.HasPrefix(n, "s") {
			th.Store().UpdateUser(ctx, n, store.UserPatch{Groups: &staff})
		}
	}
	u, _ := th.Store().GetUser(ctx, "admin")
	_, tok, _ := th.Store().CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"list:users!group=staff", "read:users!group=staff"}})
	r := th.Do("GET", "/hub/api/users?limit=1", tok, "", "Accept", "application/jupyterhub-pagination+json")
	m := r.JSON(t)
	if total := m["_pagination"].(map[string]any)["total"]; total != 2.0 {
		t.Errorf("total = %v, want the 2 staff members", total)
	}
	if items := m["items"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != "s1" {
		t.Errorf("first page = %s", r.Body)
	}
}

func TestUserModelsAreCheckedKeyByKey(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	th.User("alice", false)
	th.User("bob", false)
	if r := th.Do("POST", "/hub/api/users/carol", admin, `{"admin": false, "adimn": true}`); r.Status != http.StatusBadRequest {
		t.Errorf("a misspelt key in a new user = %d, want 400", r.Status)
	}
	if r := th.Do("PATCH", "/hub/api/users/alice", admin, `{"nmae": "x"}`); r.Status != http.StatusBadRequest {
		t.Errorf("a misspelt key in a patch = %d, want 400", r.Status)
	}
	if r := th.Do("PATCH", "/hub/api/users/alice", admin, `{"name": "bob"}`); r.Status != http.StatusBadRequest {
		t.Errorf("renaming alice onto bob = %d, want 400", r.Status)
	}
	if r := th.Do("PATCH", "/hub/api/users/alice", admin, `{"groups": ["staff"]}`); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"staff"`) {
		t.Errorf("setting groups = %d %s", r.Status, r.Body)
	}
}

// Python clients send datetime.utcnow().isoformat(): no zone.
func TestActivityTakesTimestampsWithoutAZone(t *testing.T) {
	th := hubtest.New(t)
	alice := th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/activity", alice, `{"last_activity": "2026-01-02T03:04:05.123456"}`); r.Status != http.StatusOK {
		t.Fatalf("naive timestamp = %d %s", r.Status, r.Body)
	}
	if m := th.Do("GET", "/hub/api/users/alice", alice, "").JSON(t); m["last_activity"] != "2026-01-02T03:04:05.123456Z" {
		t.Errorf("last_activity = %v, want the time read as UTC", m["last_activity"])
	}
}

func TestServerModelHasFullURLsOnceThePublicURLIsKnown(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.PublicURL = "https://hub.example.org/" })
	th.Serve("alice", http.NotFoundHandler())
	admin := th.User("admin", true)
	sv := th.Do("GET", "/hub/api/users/alice", admin, "").JSON(t)["servers"].(map[string]any)[""].(map[string]any)
	if sv["full_url"] != "https://hub.example.org/user/alice/" || sv["full_progress_url"] != "https://hub.example.org/hub/api/users/alice/server/progress" {
		t.Errorf("full_url %v, full_progress_url %v", sv["full_url"], sv["full_progress_url"])
	}
}

func TestTokenScopesAreShownExpanded(t *testing.T) {
	th := hubtest.New(t)
	alice := th.User("alice", false)
	r := th.Do("POST", "/hub/api/users/alice/tokens", alice, `{"scopes": ["read:users!user=alice"]}`)
	var tok struct{ Scopes []string }
	json.Unmarshal(r.Body, &tok)
	if !strings.Contains(strings.Join(tok.Scopes, " "), "read:users:name!user=alice") {
		t.Errorf("scopes = %v, want read:users expanded to its parts", tok.Scopes)
	}
}

func TestTheRestOfTheAPIClientsCall(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	alice := th.User("alice", false)
	if r := th.Do("OPTIONS", "/hub/api/users", "", ""); r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Headers") == "" {
		t.Errorf("CORS preflight = %d %v", r.Status, r.Header)
	}
	for _, m := range []string{"POST", "PATCH"} {
		if r := th.Do(m, "/hub/api/proxy", admin, ""); r.Status != http.StatusOK {
			t.Errorf("%s /proxy = %d", m, r.Status)
		}
		if r := th.Do(m, "/hub/api/proxy", alice, ""); r.Status != http.StatusForbidden {
			t.Errorf("%s /proxy by alice = %d, want 403", m, r.Status)
		}
	}
	if r := th.Do("POST", "/hub/api/shutdown", alice, ""); r.Status != http.StatusForbidden {
		t.Errorf("alice shutting the hub down = %d, want 403", r.Status)
	}
	if r := th.Do("POST", "/hub/api/shutdown", admin, `{"servers": false}`); r.Status != http.StatusAccepted {
		t.Errorf("admin shutdown = %d %s", r.Status, r.Body)
	}
	r := th.Do("GET", "/hub/api/authorizations/token/"+alice, alice, "")
	if r.Status != http.StatusOK || r.JSON(t)["name"] != "alice" {
		t.Errorf("deprecated token lookup = %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/hub/api/authorizations/token/nope", alice, ""); r.Status != http.StatusNotFound {
		t.Errorf("unknown token = %d, want 404", r.Status)
	}
}
