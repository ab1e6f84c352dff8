package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// These tests drive the REST API of a whole hub (agent/hubtest) with a real sqlite store.
// Spawning against real systemd is covered by the integration suite in the test VM (test/e2e).

func TestAPIRootAnswersWithoutAuthAndStampsVersion(t *testing.T) {
	th := hubtest.New(t)
	for _, p := range []string{"/hub/api", "/hub/api/"} {
		r := th.Do("GET", p, "", "")
		if r.Status != 200 || r.JSON(t)["version"] != web.Version {
			t.Errorf("GET %s = %d %s", p, r.Status, r.Body)
		}
		if r.Header.Get("X-JupyterHub-Version") != web.Version {
			t.Errorf("GET %s lacks X-JupyterHub-Version", p)
		}
	}
	if r := th.Do("GET", "/hub/health", "", ""); r.Status != 200 {
		t.Errorf("health = %d", r.Status)
	}
}

func TestAdminManagesUsers(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("root-admin", true)

	r := th.Do("POST", "/hub/api/users", admin, `{"usernames": ["alice", "bob"]}`)
	if r.Status != 201 {
		t.Fatalf("create users = %d %s", r.Status, r.Body)
	}
	if r := th.Do("POST", "/hub/api/users", admin, `{"usernames": ["alice"]}`); r.Status != 409 {
		t.Errorf("creating only existing users = %d, want 409", r.Status)
	}
	if r := th.Do("POST", "/hub/api/users/carol", admin, `{"admin": true}`); r.Status != 201 || r.JSON(t)["admin"] != true {
		t.Errorf("create carol = %d %s", r.Status, r.Body)
	}

	r = th.Do("GET", "/hub/api/users/alice", admin, "")
	m := r.JSON(t)
	if r.Status != 200 || m["name"] != "alice" || m["kind"] != "user" || m["server"] != nil || m["servers"] == nil {
		t.Errorf("get alice = %d %s", r.Status, r.Body)
	}

	var list []map[string]any
	r = th.Do("GET", "/hub/api/users", admin, "")
	json.Unmarshal(r.Body, &list)
	if r.Status != 200 || len(list) != 4 {
		t.Errorf("bare list = %d, %d users: %s", r.Status, len(list), r.Body)
	}

	r = th.Do("GET", "/hub/api/users?limit=2", admin, "", "Accept", "application/jupyterhub-pagination+json")
	page := r.JSON(t)
	pg := page["_pagination"].(map[string]any)
	if len(page["items"].([]any)) != 2 || pg["total"] != 4.0 || pg["next"] == nil {
		t.Errorf("paginated = %s", r.Body)
	}
	next := pg["next"].(map[string]any)["url"].(string)
	r = th.Do("GET", next, admin, "", "Accept", "application/jupyterhub-pagination+json")
	if page := r.JSON(t); len(page["items"].([]any)) != 2 || page["_pagination"].(map[string]any)["next"] != nil {
		t.Errorf("second page = %s", r.Body)
	}

	r = th.Do("GET", "/hub/api/users?state=inactive", admin, "")
	json.Unmarshal(r.Body, &list)
	if len(list) != 4 {
		t.Errorf("state=inactive lists %d users", len(list))
	}

	if r := th.Do("PATCH", "/hub/api/users/bob", admin, `{"admin": true, "name": "robert"}`); r.Status != 200 || r.JSON(t)["name"] != "robert" {
		t.Errorf("patch = %d %s", r.Status, r.Body)
	}
	if r := th.Do("DELETE", "/hub/api/users/robert", admin, ""); r.Status != 204 {
		t.Errorf("delete = %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/hub/api/users/robert", admin, ""); r.Status != 404 {
		t.Errorf("deleted user = %d", r.Status)
	}
}

func TestBadInputIsA4xxJSONErrorAndChangesNothing(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("root-admin", true)
	before, _ := th.Store().CountUsers(context.Background())

	cases := []struct {
		name, method, path, token, body string
		hdr                             []string
		want                            int
	}{
		{"unknown user", "GET", "/hub/api/users/nobody", admin, "", nil, 404},
		{"malformed JSON", "POST", "/hub/api/users", admin, `{"usernames": [`, nil, 400},
		{"body over the limit", "POST", "/hub/api/users", admin, `{"usernames": ["` + strings.Repeat("a", 5000) + `"]}`, nil, 413},
		// With a token the body is read as JSON whatever its Content-Type, as in JupyterHub.
		{"not JSON", "POST", "/hub/api/users", admin, `usernames=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 400},
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
			req, _ := http.NewRequest(c.method, th.URL+c.path, strings.NewReader(c.body))
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
	if after, _ := th.Store().CountUsers(context.Background()); after != before {
		t.Errorf("bad requests changed the store: %d users before, %d after", before, after)
	}
	if r := th.Do("GET", "/hub/api/users", admin, ""); r.Status != 200 {
		t.Errorf("hub stopped serving after bad input: %d", r.Status)
	}
}

func TestUserTokenSeesOnlyItsOwner(t *testing.T) {
	th := hubtest.New(t)
	alice := th.User("alice", false)
	th.User("bob", false)
	if r := th.Do("GET", "/hub/api/users/alice", alice, ""); r.Status != 200 {
		t.Errorf("alice reading herself = %d", r.Status)
	}
	// As in JupyterHub: out of reach reads as not there, so alice cannot tell bob exists.
	if r := th.Do("GET", "/hub/api/users/bob", alice, ""); r.Status != 404 {
		t.Errorf("alice reading bob = %d, want 404", r.Status)
	}
	if r, nobody := th.Do("GET", "/hub/api/users/bob", alice, ""), th.Do("GET", "/hub/api/users/nobody", alice, ""); r.Status != nobody.Status || string(r.Body) != strings.ReplaceAll(string(nobody.Body), "nobody", "bob") {
		t.Errorf("bob (exists) and nobody (does not) answer differently: %s / %s", r.Body, nobody.Body)
	}
	if r := th.Do("GET", "/hub/api/users", alice, ""); r.Status != 403 {
		t.Errorf("alice listing users = %d, want 403", r.Status)
	}
	if r := th.Do("POST", "/hub/api/users/bob/server", alice, ""); r.Status != 404 {
		t.Errorf("alice starting bob's server = %d, want 404", r.Status)
	}
	r := th.Do("GET", "/hub/api/user", alice, "")
	m := r.JSON(t)
	if m["name"] != "alice" || m["token_id"] == nil {
		t.Errorf("/user = %s", r.Body)
	}
	if !strings.Contains(string(r.Body), `"access:servers!user=alice"`) {
		t.Errorf("/user scopes lack alice's access scope: %s", r.Body)
	}
}

func TestTokensLifecycle(t *testing.T) {
	th := hubtest.New(t)
	alice := th.User("alice", false)
	r := th.Do("POST", "/hub/api/users/alice/tokens", alice, `{"note": "ci", "expires_in": 3600, "scopes": ["read:users!user=alice"]}`)
	if r.Status != 201 {
		t.Fatalf("create token = %d %s", r.Status, r.Body)
	}
	tok := r.JSON(t)
	secret, id := tok["token"].(string), tok["id"].(string)
	if tok["expires_at"] == nil || tok["note"] != "ci" {
		t.Errorf("token model = %s", r.Body)
	}
	if r := th.Do("GET", "/hub/api/users/alice", secret, ""); r.Status != 200 {
		t.Errorf("new token cannot read alice: %d", r.Status)
	}
	if r := th.Do("POST", "/hub/api/users/alice/server", secret, ""); r.Status != 403 {
		t.Errorf("read-only token started a server: %d", r.Status)
	}
	if r := th.Do("POST", "/hub/api/users/alice/tokens", alice, `{"scopes": ["admin:users"]}`); r.Status != 403 {
		t.Errorf("user minted an admin token: %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/hub/api/users/alice/tokens", alice, ""); r.Status != 200 || !strings.Contains(string(r.Body), id) {
		t.Errorf("list tokens = %d %s", r.Status, r.Body)
	}
	if r := th.Do("DELETE", "/hub/api/users/alice/tokens/"+id, alice, ""); r.Status != 204 {
		t.Errorf("delete token = %d", r.Status)
	}
	if r := th.Do("GET", "/hub/api/user", secret, ""); r.Status != 403 {
		t.Errorf("deleted token still works: %d", r.Status)
	}
}

func TestActivityMovesForwardOnly(t *testing.T) {
	th := hubtest.New(t)
	alice := th.User("alice", false)
	u, _ := th.Store().GetUser(context.Background(), "alice")
	th.Store().Server(context.Background(), u.ID, "")
	body := `{"last_activity": "2026-01-02T03:04:05.000000Z", "servers": {"": {"last_activity": "2026-01-02T03:04:05.000000Z"}}}`
	if r := th.Do("POST", "/hub/api/users/alice/activity", alice, body); r.Status != 200 {
		t.Fatalf("activity = %d %s", r.Status, r.Body)
	}
	th.Do("POST", "/hub/api/users/alice/activity", alice, `{"last_activity": "2025-01-01T00:00:00Z"}`)
	m := th.Do("GET", "/hub/api/users/alice", alice, "").JSON(t)
	if m["last_activity"] != "2026-01-02T03:04:05.000000Z" {
		t.Errorf("last_activity = %v", m["last_activity"])
	}
	if r := th.Do("POST", "/hub/api/users/alice/activity", alice, `{"servers": {"nope": {"last_activity": "2026-01-02T03:04:05Z"}}}`); r.Status != 400 {
		t.Errorf("activity for an unknown server = %d, want 400", r.Status)
	}
}
