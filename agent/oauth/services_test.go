package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// A [[service]] that logs users in through the hub as JupyterHub's HubOAuth does: the router
// forwards /services/whoami/ to it, the provider hands a code to users whose role gives them
// access:services!service=whoami, and the service exchanges it with its API token as secret.
func TestAServiceLogsUsersInThroughTheHub(t *testing.T) {
	var reached []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = append(reached, r.URL.Path) }))
	defer backend.Close()
	tokenFile := filepath.Join(t.TempDir(), "whoami-token")
	const serviceToken = "0123456789abcdef0123456789abcdef"
	os.WriteFile(tokenFile, []byte(serviceToken+"\n"), 0o600)
	th := hubtest.New(t, func(c *config.Config) {
		c.Roles = append(c.Roles, config.Role{Name: "whoami-users", Users: []string{"alice"}, Scopes: []string{"access:services!service=whoami"}})
		c.Services = append(c.Services, config.Service{Name: "whoami", APITokenFile: tokenFile, URL: backend.URL,
			OAuthClientID: "service-whoami", OAuthRedirectURI: "/services/whoami/oauth_callback", OAuthNoConfirm: true})
	})
	th.User("alice", false)
	th.User("bob", false)

	if r := th.Do("GET", "/services/whoami/api?x=1", "", ""); r.Status != http.StatusOK || len(reached) != 1 || reached[0] != "/services/whoami/api" {
		t.Fatalf("routing to the service: %d, reached %v", r.Status, reached)
	}
	if r := th.Do("GET", "/services/nope/", "", ""); r.Status != http.StatusNotFound {
		t.Errorf("an unknown service = %d", r.Status)
	}

	authorize := func(user string) *http.Response {
		req, _ := http.NewRequest("GET", th.URL+"/hub/api/oauth2/authorize?client_id=service-whoami&response_type=code&redirect_uri=%2Fservices%2Fwhoami%2Foauth_callback&state=s", nil)
		req.AddCookie(th.Login(user))
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := authorize("bob"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob, whose roles give no access to whoami = %d, want 403", resp.StatusCode)
	}
	resp := authorize("alice")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Path != "/services/whoami/oauth_callback" {
		t.Fatalf("alice = %d → %s", resp.StatusCode, loc)
	}
	tr, err := http.PostForm(th.URL+"/hub/api/oauth2/token", url.Values{"client_id": {"service-whoami"}, "client_secret": {serviceToken},
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {"/services/whoami/oauth_callback"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	json.NewDecoder(tr.Body).Decode(&tok)
	tr.Body.Close()
	if tr.StatusCode != http.StatusOK {
		t.Fatalf("the service's code exchange = %d %v", tr.StatusCode, tok)
	}
	me := th.Do("GET", "/hub/api/user", tok["access_token"].(string), "")
	if me.JSON(t)["name"] != "alice" || !strings.Contains(string(me.Body), `"access:services!service=whoami"`) {
		t.Errorf("what the service learns: %s", me.Body)
	}
}
