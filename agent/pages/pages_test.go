package pages_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

var (
	xsrfField = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)
	newToken  = regexp.MustCompile(`<pre class="token" id="new-token">([0-9a-f]+)</pre>`)
	tokenID   = regexp.MustCompile(`(?s)<td>backup.*?name="id" value="(a[0-9]+)"`)
)

// browse is alice in a browser: her cookie on every request, navigations as Chromium marks them.
type browse struct {
	h      *hubtest.Hub
	cookie *http.Cookie
}

func (b browse) get(path string) hubtest.Reply {
	return b.h.Do("GET", path, "", "", "Cookie", b.cookie.Name+"="+b.cookie.Value, "Sec-Fetch-Mode", "navigate")
}

func (b browse) post(path string, form url.Values) hubtest.Reply {
	return b.h.Do("POST", path, "", form.Encode(), "Cookie", b.cookie.Name+"="+b.cookie.Value,
		"Sec-Fetch-Mode", "navigate", "Content-Type", "application/x-www-form-urlencoded")
}

func TestTheTokenPageMakesATokenThatWorksUntilRevoked(t *testing.T) {
	h := hubtest.New(t)
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	page := alice.get("/hub/token")
	m := xsrfField.FindSubmatch(page.Body)
	if page.Status != http.StatusOK || m == nil {
		t.Fatalf("/hub/token = %d\n%s", page.Status, page.Body)
	}
	xsrf := string(m[1])

	made := alice.post("/hub/token", url.Values{"_xsrf": {xsrf}, "note": {"backup"}, "expires_in": {"3600"}, "scopes": {""}})
	tok := newToken.FindSubmatch(made.Body)
	if made.Status != http.StatusOK || tok == nil {
		t.Fatalf("creating a token = %d, no token shown:\n%s", made.Status, made.Body)
	}
	if r := h.Do("GET", "/hub/api/user", string(tok[1]), ""); r.Status != http.StatusOK || r.JSON(t)["name"] != "alice" {
		t.Fatalf("the new token against the API = %d %s", r.Status, r.Body)
	}
	listed := alice.get("/hub/token")
	if !strings.Contains(string(listed.Body), "backup") || newToken.Match(listed.Body) {
		t.Error("the token list lacks the new token, or shows its secret again")
	}

	if r := alice.post("/hub/token", url.Values{"_xsrf": {xsrf}, "expires_in": {"0"}, "scopes": {"admin:users"}}); r.Status != http.StatusBadRequest || newToken.Match(r.Body) {
		t.Errorf("a token with a scope alice lacks = %d", r.Status)
	}

	id := tokenID.FindSubmatch(listed.Body)
	if id == nil {
		t.Fatal("no revoke button")
	}
	alice.post("/hub/token/revoke", url.Values{"_xsrf": {xsrf}, "id": {string(id[1])}})
	if r := h.Do("GET", "/hub/api/user", string(tok[1]), ""); r.Status != http.StatusForbidden {
		t.Errorf("the revoked token still works: %d", r.Status)
	}
}

func TestErrorPagesKeepTheSignedInHeader(t *testing.T) {
	h := hubtest.New(t)
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	r := alice.get("/hub/no-such-page")
	if r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "Log out") || !strings.Contains(string(r.Body), "alice") {
		t.Errorf("error page for a signed-in user = %d, header missing:\n%s", r.Status, r.Body)
	}
}

func TestTheSpawnPageSaysHowLongAndOffersCancel(t *testing.T) {
	h := hubtest.New(t)
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	home := alice.get("/hub/home")
	xsrf := string(xsrfField.FindSubmatch(home.Body)[1])
	start := alice.post("/hub/spawn", url.Values{"_xsrf": {xsrf}})
	if start.Status != http.StatusFound {
		t.Fatalf("start = %d %s", start.Status, start.Body)
	}
	page := alice.get(start.Header.Get("Location"))
	body := string(page.Body)
	if page.Status == http.StatusOK {
		for _, want := range []string{"gives up after", ">Cancel<", "failed to start"} {
			if !strings.Contains(body, want) {
				t.Errorf("spawn page lacks %q", want)
			}
		}
	} // a fast stand-in server may be up already: then the page sent alice on
}
