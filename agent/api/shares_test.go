package api_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// authorizeAs asks the OAuth provider for a code to alice's server as the holder of cookie, as
// her server's login would send a browser; it reports what the provider did.
func authorizeAs(t *testing.T, th *hubtest.Hub, cookie *http.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest("GET", th.URL+"/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&response_type=code&redirect_uri=%2Fuser%2Falice%2Foauth_callback", nil)
	req.AddCookie(cookie)
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestASharedServerLetsBobInUntilItIsRevoked(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	th.Serve("alice", http.NotFoundHandler()) // alice's server, registered as an OAuth client
	th.User("bob", false)
	bob := th.Login("bob")
	if status := authorizeAs(t, th, bob); status != http.StatusForbidden {
		t.Fatalf("bob at alice's server before any share = %d, want 403", status)
	}

	r := th.Do("POST", "/hub/api/shares/alice/", admin, `{"user": "bob"}`)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"access:servers!server=alice/"`) {
		t.Fatalf("sharing alice's server with bob = %d %s", r.Status, r.Body)
	}
	// Not alice's own: bob confirms on the provider's page, as for any server that is not his.
	if status := authorizeAs(t, th, bob); status != http.StatusOK {
		t.Errorf("bob at alice's shared server = %d, want the confirmation page", status)
	}
	if r := th.Do("GET", "/hub/api/users/bob/shared", admin, ""); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"name":"alice"`) {
		t.Errorf("bob's shared servers = %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/hub/api/shares/alice", admin, ""); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"bob"`) {
		t.Errorf("alice's shares = %d %s", r.Status, r.Body)
	}

	if r := th.Do("PATCH", "/hub/api/shares/alice/", admin, `{"user": "bob"}`); r.Status != http.StatusOK || string(r.Body) != "{}\n" {
		t.Errorf("revoking bob's share = %d %q", r.Status, r.Body)
	}
	if status := authorizeAs(t, th, bob); status != http.StatusForbidden {
		t.Errorf("bob at alice's server after the revoke = %d, want 403", status)
	}
}

func TestAShareCodeWorksOnceAcceptedAndNotAfterItExpires(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	th.Serve("alice", http.NotFoundHandler())
	th.User("bob", false)
	bob := th.Login("bob")
	r := th.Do("POST", "/hub/api/share-codes/alice/", admin, `{"expires_in": 3600}`)
	m := r.JSON(t)
	accept, _ := m["accept_url"].(string)
	if r.Status != http.StatusOK || !strings.HasPrefix(accept, "/hub/accept-share?code=") || !strings.HasPrefix(m["id"].(string), "sc_") {
		t.Fatalf("share code = %d %s", r.Status, r.Body)
	}
	if status := authorizeAs(t, th, bob); status != http.StatusForbidden {
		t.Errorf("a code bob has not accepted already let him in: %d", status)
	}
	nav := func(method, path string, form url.Values) hubtest.Reply {
		return th.Do(method, path, "", form.Encode(), "Cookie", bob.Name+"="+bob.Value, "Sec-Fetch-Mode", "navigate",
			"Content-Type", "application/x-www-form-urlencoded")
	}
	page := nav("GET", accept, nil)
	xsrf := regexp.MustCompile(`name="_xsrf" value="([^"]+)"`).FindSubmatch(page.Body)
	if page.Status != http.StatusOK || xsrf == nil || !strings.Contains(string(page.Body), "alice shares a server with you") {
		t.Fatalf("accept page = %d\n%s", page.Status, page.Body)
	}
	code, _ := url.Parse(accept)
	if r := nav("POST", "/hub/accept-share", url.Values{"_xsrf": {string(xsrf[1])}, "code": {code.Query().Get("code")}}); r.Status != http.StatusFound || r.Header.Get("Location") != "/user/alice/" {
		t.Errorf("accepting = %d → %s", r.Status, r.Header.Get("Location"))
	}
	if status := authorizeAs(t, th, bob); status != http.StatusOK {
		t.Errorf("bob after accepting = %d, want the confirmation page", status)
	}
	if r := th.Do("GET", "/hub/api/share-codes/alice/", admin, ""); !strings.Contains(string(r.Body), `"exchange_count":1`) {
		t.Errorf("codes after one exchange: %s", r.Body)
	}
	// An expired code: what a code becomes after its expires_in.
	if r := th.Do("POST", "/hub/api/share-codes/alice/", admin, `{"expires_in": 10}`); r.Status != http.StatusBadRequest {
		t.Errorf("expires_in under a minute = %d, want 400", r.Status)
	}
	if r := nav("GET", "/hub/accept-share?code=not-a-code", nil); r.Status != http.StatusNotFound {
		t.Errorf("an unknown code = %d, want 404", r.Status)
	}
}

func TestOnlyThoseHoldingSharesMayShare(t *testing.T) {
	th := hubtest.New(t)
	th.Serve("alice", http.NotFoundHandler())
	alice := th.Token("alice")
	th.User("bob", false)
	// As in JupyterHub, users share their own servers only once a role gives them shares!user.
	if r := th.Do("POST", "/hub/api/shares/alice/", alice, `{"user": "bob"}`); r.Status != http.StatusForbidden {
		t.Errorf("alice sharing without the shares scope = %d, want 403", r.Status)
	}
}
