package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// A named server has an OAuth client of its own, jupyterhub-user-<name>-<server>, whose redirect
// URI and tokens are for that server alone.
func TestANamedServersOAuthClientIsItsOwn(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.AllowNamedServers = true })
	th.User("alice", false)
	th.User("bob", false)
	env := serverEnv(t, th, "alice", "gpu")
	if env["JUPYTERHUB_CLIENT_ID"] != "jupyterhub-user-alice-gpu" || env["JUPYTERHUB_OAUTH_CALLBACK_URL"] != "/user/alice/gpu/oauth_callback" ||
		env["JUPYTERHUB_SERVICE_PREFIX"] != "/user/alice/gpu/" || env["JUPYTERHUB_SERVER_NAME"] != "gpu" {
		t.Fatalf("named server's environment: %v", env)
	}
	authorize := func(c *http.Cookie, redirect string) *http.Response {
		q := url.Values{"client_id": {"jupyterhub-user-alice-gpu"}, "redirect_uri": {redirect}, "response_type": {"code"}}
		req, _ := http.NewRequest("GET", th.URL+"/hub/api/oauth2/authorize?"+q.Encode(), nil)
		req.AddCookie(c)
		resp, err := noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := authorize(th.Login("alice"), "/user/alice/oauth_callback"); resp.StatusCode < 400 {
		t.Errorf("the default server's redirect URI for gpu's client = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := authorize(th.Login("bob"), "/user/alice/gpu/oauth_callback"); resp.StatusCode != 403 {
		t.Errorf("bob authorizing for alice/gpu = %d, want 403", resp.StatusCode)
	}
	resp := authorize(th.Login("alice"), "/user/alice/gpu/oauth_callback")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc.Path != "/user/alice/gpu/oauth_callback" {
		t.Fatalf("alice authorizing for her gpu server = %d → %s", resp.StatusCode, loc)
	}
	form := url.Values{"client_id": {"jupyterhub-user-alice-gpu"}, "client_secret": {env["JUPYTERHUB_API_TOKEN"]},
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {"/user/alice/gpu/oauth_callback"}}
	tr, err := http.PostForm(th.URL+"/hub/api/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	json.NewDecoder(tr.Body).Decode(&tok)
	tr.Body.Close()
	if tr.StatusCode != 200 {
		t.Fatalf("exchange = %d %v", tr.StatusCode, tok)
	}
	r := th.Do("GET", "/hub/api/user", tok["access_token"].(string), "")
	if body := string(r.Body); r.Status != 200 || !strings.Contains(body, `"access:servers!server=alice/gpu"`) || strings.Contains(body, `"access:servers!server=alice/"`) {
		t.Errorf("the token of gpu's handshake = %d %s, want access to alice/gpu only", r.Status, r.Body)
	}
}
