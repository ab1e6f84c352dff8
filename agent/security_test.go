package agent_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// Every user server shares the hub's origin. These replay what a page bob serves from his own
// server made alice's browser do, request by request, with the headers Chromium sends.

// asScript is a fetch() from a page on the hub's origin: alice's cookie rides along.
func asScript(h *hubtest.Hub, alice *http.Cookie, method, path, body string, hdr ...string) hubtest.Reply {
	return h.Do(method, path, "", body, append([]string{"Cookie", alice.Name + "=" + alice.Value,
		"Sec-Fetch-Mode", "cors", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Dest", "empty"}, hdr...)...)
}

func asNavigation(h *hubtest.Hub, alice *http.Cookie, path string) hubtest.Reply {
	return h.Do("GET", path, "", "", "Cookie", alice.Name+"="+alice.Value,
		"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "none", "Sec-Fetch-Dest", "document")
}

var xsrfField = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)

func TestAUserServersPageCannotActWithAnotherUsersHubCookie(t *testing.T) {
	h := hubtest.New(t)
	h.User("alice", true) // an admin visitor is the worst case
	alice := h.Login("alice")

	// The attack as it worked: read who she is, scrape the XSRF token, mint a token.
	if r := asScript(h, alice, "GET", "/hub/api/user", ""); r.Status != http.StatusForbidden {
		t.Errorf("a script read /hub/api/user with alice's cookie: %d %s", r.Status, r.Body)
	}
	r := asScript(h, alice, "GET", "/hub/home", "")
	if r.Status != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/hub/login") {
		t.Errorf("a script fetched alice's home page: %d", r.Status)
	}
	if xsrfField.Match(r.Body) {
		t.Error("the XSRF token was served to a script")
	}
	if r := asScript(h, alice, "POST", "/hub/api/users/alice/tokens", `{"note": "bob's now"}`); r.Status != http.StatusForbidden {
		t.Errorf("a script created a token for alice: %d %s", r.Status, r.Body)
	}
	if r := asScript(h, alice, "GET", "/hub/api/users/alice/tokens", "", "Sec-Fetch-Mode", "no-cors"); r.Status != http.StatusForbidden {
		t.Errorf("a no-cors request used alice's cookie: %d", r.Status)
	}

	// Alice herself, in the hub's own pages, keeps working: a navigation gets the page and its
	// token, and the page's own scripts send the token back.
	page := asNavigation(h, alice, "/hub/home")
	m := xsrfField.FindSubmatch(page.Body)
	if page.Status != http.StatusOK || m == nil {
		t.Fatalf("alice's own navigation to /hub/home: %d, token found %v", page.Status, m != nil)
	}
	if r := asScript(h, alice, "GET", "/hub/api/user", "", "X-XSRFToken", string(m[1])); r.Status != http.StatusOK {
		t.Errorf("the hub page's own script with its token: %d %s", r.Status, r.Body)
	}
	if r := asScript(h, alice, "GET", "/hub/api/user?_xsrf="+string(m[1]), ""); r.Status != http.StatusOK {
		t.Errorf("an EventSource-style request with the token in the query: %d", r.Status)
	}
	// Clients that are not browsers send no Sec-Fetch-Mode and keep working with a cookie.
	if r := h.Do("GET", "/hub/api/user", "", "", "Cookie", alice.Name+"="+alice.Value); r.Status != http.StatusOK {
		t.Errorf("a cookie GET without Sec-Fetch headers: %d", r.Status)
	}
}

func TestHubPagesCannotBeFramedOrSniffed(t *testing.T) {
	h := hubtest.New(t)
	for _, p := range []string{"/hub/login", "/hub/api/", "/hub/nope"} {
		r := h.Do("GET", p, "", "")
		if !strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Cross-Origin-Opener-Policy") != "same-origin" {
			t.Errorf("%s: CSP %q, nosniff %q, COOP %q", p, r.Header.Get("Content-Security-Policy"),
				r.Header.Get("X-Content-Type-Options"), r.Header.Get("Cross-Origin-Opener-Policy"))
		}
	}
}

// The attack that took the hub to 1.74 GB: large multipart uploads to the login form, sent by
// nobody in particular.
func TestLoginFormTakesNoUploads(t *testing.T) {
	h := hubtest.New(t)
	big := strings.Repeat("x", 1<<20)
	body := "--b\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n" + big + "\r\n--b--\r\n"
	r := h.Do("POST", "/hub/login", "", body, "Content-Type", "multipart/form-data; boundary=b")
	if r.Status != http.StatusUnsupportedMediaType {
		t.Errorf("multipart login = %d, want 415", r.Status)
	}
	form := "username=alice&password=" + big
	r = h.Do("POST", "/hub/login", "", form, "Content-Type", "application/x-www-form-urlencoded")
	if r.Status < 400 {
		t.Errorf("a 1 MiB login form = %d, want it refused", r.Status)
	}
}

// A client that starts a body and stops sending is cut off instead of holding the hub's memory
// and a goroutine for ever.
func TestAHalfSentBodyIsCutOff(t *testing.T) {
	h := hubtest.New(t, func(c *config.Config) { c.Hub.BodyTimeout = config.Duration(2 * time.Second) })
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /hub/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 50000\r\n\r\nusername=")
	conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	start := time.Now()
	io.ReadAll(conn) // returns when the hub gives up on the body and closes
	if waited := time.Since(start); waited > time.Minute {
		t.Errorf("the hub waited %s for the rest of the body", waited)
	}
}

// loginForm loads the login page as a browser would and returns its cookies and form token.
func loginForm(t *testing.T, h *hubtest.Hub) (cookies []string, token string) {
	t.Helper()
	page := h.Do("GET", "/hub/login", "", "")
	m := xsrfField.FindSubmatch(page.Body)
	if m == nil {
		t.Fatalf("the login form has no _xsrf field:\n%s", page.Body)
	}
	for _, c := range page.Header.Values("Set-Cookie") {
		cookies = append(cookies, strings.SplitN(c, ";", 2)[0])
	}
	return cookies, string(m[1])
}

func postLogin(h *hubtest.Hub, cookies []string, form url.Values, hdr ...string) hubtest.Reply {
	return h.Do("POST", "/hub/login", "", form.Encode(), append([]string{
		"Content-Type", "application/x-www-form-urlencoded", "Cookie", strings.Join(cookies, "; ")}, hdr...)...)
}

func loggedIn(r hubtest.Reply) bool {
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "jupyterhub-hub-login=") && !strings.Contains(c, "Max-Age=0") {
			return true
		}
	}
	return false
}

// A page on another site posted the login form with bob's password: alice's browser would have
// been logged in as bob, and what she saved would have gone to bob's server.
func TestACrossSiteFormCannotLogABrowserIn(t *testing.T) {
	h := hubtest.New(t)
	h.User("bob", false)
	h.SetPassword("bob", "bob-pw")
	creds := url.Values{"username": {"bob"}, "password": {"bob-pw"}}

	// The other site cannot send the hub's login cookie: SameSite keeps it home.
	if r := postLogin(h, nil, creds, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); r.Status != http.StatusForbidden || loggedIn(r) {
		t.Errorf("cross-site login form = %d, logged in %v", r.Status, loggedIn(r))
	}
	// Nor guess a token for a cookie it cannot see.
	cookies, _ := loginForm(t, h)
	creds.Set("_xsrf", "guessed")
	if r := postLogin(h, cookies, creds); r.Status != http.StatusForbidden || loggedIn(r) {
		t.Errorf("login with a wrong token = %d, logged in %v", r.Status, loggedIn(r))
	}

	cookies, token := loginForm(t, h)
	creds.Set("_xsrf", token)
	if r := postLogin(h, cookies, creds); r.Status != http.StatusFound || !loggedIn(r) {
		t.Errorf("bob's own login from the hub's form = %d %s", r.Status, r.Body)
	}
}

func TestFailedLoginsAreThrottledPerAccountAndAddress(t *testing.T) {
	h := hubtest.New(t, func(c *config.Config) {
		c.Auth.MaxFailedLogins = 3
		c.Hub.TrustedProxies = []string{"127.0.0.1/32"} // the test client speaks for browsers, as nginx does
	})
	h.User("alice", false)
	h.SetPassword("alice", "right")
	try := func(user, password, from string) hubtest.Reply {
		cookies, token := loginForm(t, h)
		return postLogin(h, cookies, url.Values{"username": {user}, "password": {password}, "_xsrf": {token}},
			"X-Forwarded-For", from)
	}
	for i := range 3 {
		if r := try("alice", fmt.Sprint("guess", i), "198.51.100.1"); r.Status != http.StatusForbidden {
			t.Fatalf("wrong password %d = %d", i, r.Status)
		}
	}
	r := try("alice", "right", "203.0.113.9")
	if r.Status != http.StatusTooManyRequests || loggedIn(r) || r.Header.Get("Retry-After") == "" {
		t.Errorf("the right password after 3 failures = %d (Retry-After %q), want 429 for now", r.Status, r.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(r.Body), "Too many failed logins") {
		t.Errorf("the page does not say why:\n%s", r.Body)
	}
	// The guesser's address is held back for every account, up to four times the account limit.
	for i := range 12 {
		try(fmt.Sprint("nobody", i), "x", "198.51.100.1")
	}
	h.User("carol", false)
	h.SetPassword("carol", "pw")
	if r := try("carol", "pw", "198.51.100.1"); r.Status != http.StatusTooManyRequests {
		t.Errorf("the guessing address logged carol in: %d", r.Status)
	}
	if r := try("carol", "pw", "203.0.113.9"); r.Status != http.StatusFound || !loggedIn(r) {
		t.Errorf("carol from another address = %d", r.Status)
	}
}
