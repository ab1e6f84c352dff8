package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// The OAuth provider driven as jupyterhub-singleuser drives it, against a whole hub (agent/hubtest).

func TestOAuthHandshakeAsSingleUserServerDoesIt(t *testing.T) {
	th := hubtest.New(t)
	th.User("alice", false)
	th.User("bob", false)
	ctx := context.Background()
	serverToken := serverEnv(t, th, "alice", "")["JUPYTERHUB_API_TOKEN"]

	authorize := "/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&redirect_uri=%2Fuser%2Falice%2Foauth_callback&response_type=code&state=xyz"
	get := func(c *http.Cookie) *http.Response {
		req, _ := http.NewRequest("GET", th.URL+authorize, nil)
		if c != nil {
			req.AddCookie(c)
		}
		resp, err := noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get(nil); resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), "/hub/login?next=") {
		t.Errorf("anonymous authorize = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := get(th.Login("bob")); resp.StatusCode != 403 {
		t.Errorf("bob authorizing for alice's server = %d, want 403", resp.StatusCode)
	}
	resp := get(th.Login("alice"))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc.Path != "/user/alice/oauth_callback" || loc.Query().Get("state") != "xyz" {
		t.Fatalf("alice authorize = %d → %s", resp.StatusCode, loc)
	}
	code := loc.Query().Get("code")

	exchange := func(code, secret string) (int, map[string]any) {
		form := url.Values{"client_id": {"jupyterhub-user-alice"}, "client_secret": {secret}, "grant_type": {"authorization_code"},
			"code": {code}, "redirect_uri": {"/user/alice/oauth_callback"}}
		resp, err := http.PostForm(th.URL+"/hub/api/oauth2/token", form)
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
	r := th.Do("GET", "/hub/api/user", tok["access_token"].(string), "")
	m := r.JSON(t)
	if r.Status != 200 || m["name"] != "alice" || !strings.Contains(string(r.Body), `"access:servers!server=alice/"`) {
		t.Errorf("/user with the OAuth token = %d %s", r.Status, r.Body)
	}
	if _, ok := m["servers"]; ok {
		t.Errorf("an access-only token sees alice's servers: %s", r.Body)
	}

	// Logging out revokes the OAuth tokens of that session.
	sess, _ := th.Store().LookupToken(ctx, tok["access_token"].(string))
	th.Store().DeleteSession(ctx, sess.SessionID)
	if r := th.Do("GET", "/hub/api/user", tok["access_token"].(string), ""); r.Status != 403 {
		t.Errorf("OAuth token after logout = %d, want 403", r.Status)
	}
}

// The provider used to ignore PKCE: a code stolen from the redirect could be exchanged without
// the verifier only the real client holds.
func TestPKCEIsChecked(t *testing.T) {
	th := hubtest.New(t)
	th.User("alice", false)
	secret := serverEnv(t, th, "alice", "")["JUPYTERHUB_API_TOKEN"]
	verifier := "a-verifier-of-at-least-forty-three-characters-long-xx"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	codeFor := func() string {
		req, _ := http.NewRequest("GET", th.URL+"/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&response_type=code&code_challenge_method=S256&code_challenge="+challenge, nil)
		req.AddCookie(th.Login("alice"))
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc.Query().Get("code")
	}
	exchange := func(code, verifier string) int {
		resp, err := http.PostForm(th.URL+"/hub/api/oauth2/token", url.Values{"client_id": {"jupyterhub-user-alice"}, "client_secret": {secret},
			"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := exchange(codeFor(), ""); status != http.StatusBadRequest {
		t.Errorf("exchange without the verifier = %d, want 400", status)
	}
	if status := exchange(codeFor(), "wrong-verifier-wrong-verifier-wrong-verifier-xx"); status != http.StatusBadRequest {
		t.Errorf("exchange with a wrong verifier = %d, want 400", status)
	}
	if status := exchange(codeFor(), verifier); status != http.StatusOK {
		t.Errorf("exchange with the verifier = %d, want 200", status)
	}
}
