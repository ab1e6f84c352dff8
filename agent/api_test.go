package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// These tests drive the hub's HTTP surface with a real sqlite store. Nothing here starts a server:
// spawning against real systemd is covered by the integration suite in the test VM (test/e2e).

type testHub struct {
	*Hub
	srv *httptest.Server
	t   *testing.T
}

func newTestHub(t *testing.T) *testHub {
	t.Helper()
	cfg := config.Default()
	cfg.Hub.DataDir = t.TempDir()
	cfg.Hub.MaxBodyBytes = 4096
	h, err := New(context.Background(), cfg, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(func() { srv.Close(); h.Close() })
	return &testHub{Hub: h, srv: srv, t: t}
}

// user creates a user and returns an API token that inherits their scopes.
func (th *testHub) user(name string, admin bool) string {
	th.t.Helper()
	ctx := context.Background()
	u, err := th.store.CreateUser(ctx, name, admin)
	if err != nil {
		th.t.Fatal(err)
	}
	_, secret, err := th.store.CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"inherit"}})
	if err != nil {
		th.t.Fatal(err)
	}
	return secret
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not a JSON object (%d): %s", r.status, r.body)
	}
	return m
}

func (th *testHub) do(method, path, token, body string, hdr ...string) reply {
	th.t.Helper()
	req, _ := http.NewRequest(method, th.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		th.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func TestAPIRootAnswersWithoutAuthAndStampsVersion(t *testing.T) {
	th := newTestHub(t)
	for _, p := range []string{"/hub/api", "/hub/api/"} {
		r := th.do("GET", p, "", "")
		if r.status != 200 || r.json(t)["version"] != Version {
			t.Errorf("GET %s = %d %s", p, r.status, r.body)
		}
		if r.header.Get("X-JupyterHub-Version") != Version {
			t.Errorf("GET %s lacks X-JupyterHub-Version", p)
		}
	}
	if r := th.do("GET", "/hub/health", "", ""); r.status != 200 {
		t.Errorf("health = %d", r.status)
	}
}

func TestAdminManagesUsers(t *testing.T) {
	th := newTestHub(t)
	admin := th.user("root-admin", true)

	r := th.do("POST", "/hub/api/users", admin, `{"usernames": ["alice", "bob"]}`)
	if r.status != 201 {
		t.Fatalf("create users = %d %s", r.status, r.body)
	}
	if r := th.do("POST", "/hub/api/users", admin, `{"usernames": ["alice"]}`); r.status != 409 {
		t.Errorf("creating only existing users = %d, want 409", r.status)
	}
	if r := th.do("POST", "/hub/api/users/carol", admin, `{"admin": true}`); r.status != 201 || r.json(t)["admin"] != true {
		t.Errorf("create carol = %d %s", r.status, r.body)
	}

	r = th.do("GET", "/hub/api/users/alice", admin, "")
	m := r.json(t)
	if r.status != 200 || m["name"] != "alice" || m["kind"] != "user" || m["server"] != nil || m["servers"] == nil {
		t.Errorf("get alice = %d %s", r.status, r.body)
	}

	var list []map[string]any
	r = th.do("GET", "/hub/api/users", admin, "")
	json.Unmarshal(r.body, &list)
	if r.status != 200 || len(list) != 4 {
		t.Errorf("bare list = %d, %d users: %s", r.status, len(list), r.body)
	}

	r = th.do("GET", "/hub/api/users?limit=2", admin, "", "Accept", "application/jupyterhub-pagination+json")
	page := r.json(t)
	pg := page["_pagination"].(map[string]any)
	if len(page["items"].([]any)) != 2 || pg["total"] != 4.0 || pg["next"] == nil {
		t.Errorf("paginated = %s", r.body)
	}
	next := pg["next"].(map[string]any)["url"].(string)
	r = th.do("GET", next, admin, "", "Accept", "application/jupyterhub-pagination+json")
	if page := r.json(t); len(page["items"].([]any)) != 2 || page["_pagination"].(map[string]any)["next"] != nil {
		t.Errorf("second page = %s", r.body)
	}

	r = th.do("GET", "/hub/api/users?state=inactive", admin, "")
	json.Unmarshal(r.body, &list)
	if len(list) != 4 {
		t.Errorf("state=inactive lists %d users", len(list))
	}

	if r := th.do("PATCH", "/hub/api/users/bob", admin, `{"admin": true, "name": "robert"}`); r.status != 200 || r.json(t)["name"] != "robert" {
		t.Errorf("patch = %d %s", r.status, r.body)
	}
	if r := th.do("DELETE", "/hub/api/users/robert", admin, ""); r.status != 204 {
		t.Errorf("delete = %d %s", r.status, r.body)
	}
	if r := th.do("GET", "/hub/api/users/robert", admin, ""); r.status != 404 {
		t.Errorf("deleted user = %d", r.status)
	}
}

func TestBadInputIsA4xxJSONErrorAndChangesNothing(t *testing.T) {
	th := newTestHub(t)
	admin := th.user("root-admin", true)
	before, _ := th.store.CountUsers(context.Background())

	cases := []struct {
		name, method, path, token, body string
		hdr                             []string
		want                            int
	}{
		{"unknown user", "GET", "/hub/api/users/nobody", admin, "", nil, 404},
		{"malformed JSON", "POST", "/hub/api/users", admin, `{"usernames": [`, nil, 400},
		{"body over the limit", "POST", "/hub/api/users", admin, `{"usernames": ["` + strings.Repeat("a", 5000) + `"]}`, nil, 413},
		{"not JSON", "POST", "/hub/api/users", admin, `usernames=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"token in the wrong header", "GET", "/hub/api/users", "", "", []string{"X-Auth-Token", admin}, 403},
		{"basic auth instead of a token", "GET", "/hub/api/users", "", "", []string{"Authorization", "Basic " + admin}, 403},
		{"unknown token", "GET", "/hub/api/user", "not-a-token", "", nil, 403},
		{"dot-dot in a name", "GET", "/hub/api/users/..%2F..%2Fetc", admin, "", nil, 400},
		{"dot-dot segments", "GET", "/hub/api/users/../../etc/passwd", admin, "", nil, 400},
		{"slash in a created name", "POST", "/hub/api/users", admin, `{"usernames": ["../evil"]}`, nil, 400},
		{"upper case name", "POST", "/hub/api/users/Eve", admin, "", nil, 400},
		{"wrong method", "PUT", "/hub/api/users", admin, "", nil, 405},
		{"unknown endpoint", "GET", "/hub/api/nope", admin, "", nil, 404},
		{"bad limit", "GET", "/hub/api/users?limit=x", admin, "", nil, 400},
		{"bad state", "GET", "/hub/api/users?state=zombie", admin, "", nil, 400},
		{"future activity", "POST", "/hub/api/users/root-admin/activity", admin, `{"last_activity": "2999-01-01T00:00:00Z"}`, nil, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, th.srv.URL+c.path, strings.NewReader(c.body))
			req.URL.Opaque = strings.SplitN(c.path, "?", 2)[0] // keep "../" exactly as sent
			if q := strings.SplitN(c.path, "?", 2); len(q) == 2 {
				req.URL.RawQuery = q[1]
			}
			if c.token != "" {
				req.Header.Set("Authorization", "token "+c.token)
			}
			if c.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for i := 0; i+1 < len(c.hdr); i += 2 {
				req.Header.Set(c.hdr[i], c.hdr[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Status  int    `json:"status"`
				Message string `json:"message"`
			}
			err = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != c.want || err != nil || e.Status != c.want || e.Message == "" {
				t.Errorf("got %d %+v (decode err %v), want a %d JSON error", resp.StatusCode, e, err, c.want)
			}
		})
	}
	if after, _ := th.store.CountUsers(context.Background()); after != before {
		t.Errorf("bad requests changed the store: %d users before, %d after", before, after)
	}
	if r := th.do("GET", "/hub/api/users", admin, ""); r.status != 200 {
		t.Errorf("hub stopped serving after bad input: %d", r.status)
	}
}

func TestUserTokenSeesOnlyItsOwner(t *testing.T) {
	th := newTestHub(t)
	alice := th.user("alice", false)
	th.user("bob", false)
	if r := th.do("GET", "/hub/api/users/alice", alice, ""); r.status != 200 {
		t.Errorf("alice reading herself = %d", r.status)
	}
	if r := th.do("GET", "/hub/api/users/bob", alice, ""); r.status != 403 {
		t.Errorf("alice reading bob = %d, want 403", r.status)
	}
	if r := th.do("GET", "/hub/api/users", alice, ""); r.status != 403 {
		t.Errorf("alice listing users = %d, want 403", r.status)
	}
	if r := th.do("POST", "/hub/api/users/bob/server", alice, ""); r.status != 403 {
		t.Errorf("alice starting bob's server = %d, want 403", r.status)
	}
	r := th.do("GET", "/hub/api/user", alice, "")
	m := r.json(t)
	if m["name"] != "alice" || m["token_id"] == nil {
		t.Errorf("/user = %s", r.body)
	}
	if !strings.Contains(string(r.body), `"access:servers!user=alice"`) {
		t.Errorf("/user scopes lack alice's access scope: %s", r.body)
	}
}

func TestTokensLifecycle(t *testing.T) {
	th := newTestHub(t)
	alice := th.user("alice", false)
	r := th.do("POST", "/hub/api/users/alice/tokens", alice, `{"note": "ci", "expires_in": 3600, "scopes": ["read:users!user=alice"]}`)
	if r.status != 201 {
		t.Fatalf("create token = %d %s", r.status, r.body)
	}
	tok := r.json(t)
	secret, id := tok["token"].(string), tok["id"].(string)
	if tok["expires_at"] == nil || tok["note"] != "ci" {
		t.Errorf("token model = %s", r.body)
	}
	if r := th.do("GET", "/hub/api/users/alice", secret, ""); r.status != 200 {
		t.Errorf("new token cannot read alice: %d", r.status)
	}
	if r := th.do("POST", "/hub/api/users/alice/server", secret, ""); r.status != 403 {
		t.Errorf("read-only token started a server: %d", r.status)
	}
	if r := th.do("POST", "/hub/api/users/alice/tokens", alice, `{"scopes": ["admin:users"]}`); r.status != 403 {
		t.Errorf("user minted an admin token: %d %s", r.status, r.body)
	}
	if r := th.do("GET", "/hub/api/users/alice/tokens", alice, ""); r.status != 200 || !strings.Contains(string(r.body), id) {
		t.Errorf("list tokens = %d %s", r.status, r.body)
	}
	if r := th.do("DELETE", "/hub/api/users/alice/tokens/"+id, alice, ""); r.status != 204 {
		t.Errorf("delete token = %d", r.status)
	}
	if r := th.do("GET", "/hub/api/user", secret, ""); r.status != 403 {
		t.Errorf("deleted token still works: %d", r.status)
	}
}

func TestActivityMovesForwardOnly(t *testing.T) {
	th := newTestHub(t)
	alice := th.user("alice", false)
	u, _ := th.store.GetUser(context.Background(), "alice")
	th.store.Server(context.Background(), u.ID, "")
	body := `{"last_activity": "2026-01-02T03:04:05.000000Z", "servers": {"": {"last_activity": "2026-01-02T03:04:05.000000Z"}}}`
	if r := th.do("POST", "/hub/api/users/alice/activity", alice, body); r.status != 200 {
		t.Fatalf("activity = %d %s", r.status, r.body)
	}
	th.do("POST", "/hub/api/users/alice/activity", alice, `{"last_activity": "2025-01-01T00:00:00Z"}`)
	m := th.do("GET", "/hub/api/users/alice", alice, "").json(t)
	if m["last_activity"] != "2026-01-02T03:04:05.000000Z" {
		t.Errorf("last_activity = %v", m["last_activity"])
	}
	if r := th.do("POST", "/hub/api/users/alice/activity", alice, `{"servers": {"nope": {"last_activity": "2026-01-02T03:04:05Z"}}}`); r.status != 400 {
		t.Errorf("activity for an unknown server = %d, want 400", r.status)
	}
}

// login gives a cookie for a session of user name, as the login page would.
func (th *testHub) login(name string) *http.Cookie {
	u, err := th.store.GetUser(context.Background(), name)
	if err != nil {
		th.t.Fatal(err)
	}
	_, secret, err := th.store.CreateSession(context.Background(), store.Session{UserID: u.ID}, 3600e9)
	if err != nil {
		th.t.Fatal(err)
	}
	return &http.Cookie{Name: loginCookie, Value: th.sign(secret)}
}

func TestOAuthHandshakeAsSingleUserServerDoesIt(t *testing.T) {
	th := newTestHub(t)
	th.user("alice", false)
	th.user("bob", false)
	ctx := context.Background()
	u, _ := th.store.GetUser(ctx, "alice")
	sv, _ := th.store.Server(ctx, u.ID, "")
	job := &spawnJob{server: sv, progress: newSpawnProgress()}
	if err := (credentialsStep{th.Hub}).start(ctx, job); err != nil {
		t.Fatal(err)
	}
	serverToken := job.token

	authorize := "/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&redirect_uri=%2Fuser%2Falice%2Foauth_callback&response_type=code&state=xyz"
	get := func(c *http.Cookie) *http.Response {
		req, _ := http.NewRequest("GET", th.srv.URL+authorize, nil)
		if c != nil {
			req.AddCookie(c)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get(nil); resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), "/hub/login?next=") {
		t.Errorf("anonymous authorize = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := get(th.login("bob")); resp.StatusCode != 403 {
		t.Errorf("bob authorizing for alice's server = %d, want 403", resp.StatusCode)
	}
	resp := get(th.login("alice"))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc.Path != "/user/alice/oauth_callback" || loc.Query().Get("state") != "xyz" {
		t.Fatalf("alice authorize = %d → %s", resp.StatusCode, loc)
	}
	code := loc.Query().Get("code")

	exchange := func(code, secret string) (int, map[string]any) {
		form := url.Values{"client_id": {"jupyterhub-user-alice"}, "client_secret": {secret}, "grant_type": {"authorization_code"},
			"code": {code}, "redirect_uri": {"/user/alice/oauth_callback"}}
		resp, err := http.PostForm(th.srv.URL+"/hub/api/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if status, _ := exchange(code, "wrong-secret"); status != 401 {
		t.Errorf("exchange with a wrong client secret = %d, want 401", status)
	}
	status, tok := exchange(code, serverToken)
	if status != 200 || tok["token_type"] != "Bearer" {
		t.Fatalf("exchange = %d %v", status, tok)
	}
	if status, _ := exchange(code, serverToken); status != 400 {
		t.Errorf("replayed code = %d, want 400", status)
	}
	r := th.do("GET", "/hub/api/user", tok["access_token"].(string), "")
	m := r.json(t)
	if r.status != 200 || m["name"] != "alice" || !strings.Contains(string(r.body), `"access:servers!server=alice/"`) {
		t.Errorf("/user with the OAuth token = %d %s", r.status, r.body)
	}
	if _, ok := m["servers"]; ok {
		t.Errorf("an access-only token sees alice's servers: %s", r.body)
	}

	// Logging out revokes the OAuth tokens of that session.
	sess, _ := th.store.LookupToken(ctx, tok["access_token"].(string))
	th.store.DeleteSession(ctx, sess.SessionID)
	if r := th.do("GET", "/hub/api/user", tok["access_token"].(string), ""); r.status != 403 {
		t.Errorf("OAuth token after logout = %d, want 403", r.status)
	}
}

func TestOpenRedirectIsRefused(t *testing.T) {
	th := newTestHub(t)
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", ""} {
		if got := th.safeNext(next); got != "/hub/home" {
			t.Errorf("safeNext(%q) = %q", next, got)
		}
	}
	if got := th.safeNext("/user/alice/tree"); got != "/user/alice/tree" {
		t.Errorf("safeNext dropped a local path: %q", got)
	}
}
