package oidc

// The test harness: the project's Keycloak-shaped provider (test/oidc-provider, Node.js) run as a
// child process, a back-channel logout listener, and a cookie-jar "browser" that logs in by
// posting the provider's HTML form.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/test/oidcpeer"
)

const (
	clientID     = "jupyterhub"
	clientSecret = "s3cret-for-tests-only"
	// Nothing listens at the hub's URLs: the browser stops at the redirect and hands its query over.
	hubOrigin     = "http://127.0.0.1:9"
	redirectURL   = hubOrigin + "/hub/oauth_callback"
	postLogoutURL = hubOrigin + "/hub/logged-out"
	accessTTL     = 30 * time.Second
)

var (
	mainOnce sync.Once
	mainIdP  *idp

	bcOnce      sync.Once
	bcServer    *httptest.Server
	logoutToken = make(chan string, 16) // tokens POSTed to the back-channel listener

	startedMu sync.Mutex
	started   []*oidcpeer.Peer
)

func TestMain(m *testing.M) {
	code := m.Run()
	startedMu.Lock()
	for _, p := range started {
		p.Stop()
	}
	startedMu.Unlock()
	if bcServer != nil {
		bcServer.Close()
	}
	os.Exit(code)
}

// idp is one running test/oidc-provider.
type idp struct {
	*oidcpeer.Peer
	issuer string
	base   string // scheme://host:port
}

func (p *idp) stop() { p.Stop() }

// backchannel starts (once) the listener the main provider sends logout tokens to.
func backchannel() string {
	bcOnce.Do(func() {
		bcServer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("logout_token") == "" {
				http.Error(w, "want a POSTed logout_token", http.StatusBadRequest)
				return
			}
			select {
			case logoutToken <- r.PostForm.Get("logout_token"):
			default:
			}
			w.WriteHeader(http.StatusOK)
		}))
	})
	return bcServer.URL + "/hub/oidc/backchannel-logout"
}

// startIdP runs a provider on a free port for the test client. env adds to or overrides its settings.
func startIdP(t testing.TB, env ...string) *idp {
	t.Helper()
	begin := time.Now()
	p, err := oidcpeer.Run(append([]string{
		"CLIENT_ID=" + clientID,
		"CLIENT_SECRET=" + clientSecret,
		"REDIRECT_URIS=" + redirectURL,
		"POST_LOGOUT_URIS=" + postLogoutURL,
		fmt.Sprintf("ACCESS_TTL=%d", int(accessTTL.Seconds())),
	}, env...)...)
	if errors.Is(err, oidcpeer.ErrNoNode) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	startedMu.Lock()
	started = append(started, p)
	startedMu.Unlock()
	t.Logf("OIDC provider %s ready in %s", p.Issuer, time.Since(begin).Round(time.Millisecond))
	return &idp{Peer: p, issuer: p.Issuer, base: p.Base}
}

// mainProvider is the provider most tests share; it sends back-channel logouts to our listener.
func mainProvider(t testing.TB) *idp {
	t.Helper()
	if _, err := oidcpeer.Node(); err != nil {
		t.Skip(err)
	}
	mainOnce.Do(func() { mainIdP = startIdP(t, "BACKCHANNEL_LOGOUT_URI="+backchannel()) })
	if mainIdP == nil {
		t.Fatal("main OIDC provider did not start")
	}
	return mainIdP
}

// testAPI calls the provider's /test/ API, e.g. POST /test/users/erin {"groups": [...]}.
func (p *idp) testAPI(t testing.TB, path string, body any) map[string]any {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	resp, err := http.Post(p.base+path, "application/json", r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s %v %v", path, resp.Status, out, err)
	}
	return out
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// newProvider makes a Provider for p with the test client; change adjusts the Config.
func newProvider(t testing.TB, p *idp, change func(*Config)) *Provider {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secret, []byte(clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Issuer:                p.issuer,
		ClientID:              clientID,
		ClientSecretFile:      secret,
		RedirectURL:           redirectURL,
		PostLogoutRedirectURL: postLogoutURL,
		GroupsClaims:          []string{"groups", "realm_access.roles", "resource_access.jupyterhub.roles"},
		HTTPTimeout:           5 * time.Second,
	}
	if change != nil {
		change(&cfg)
	}
	prov, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return prov
}

// browser is a cookie-jar HTTP client that stops at redirects to the hub, like a browser whose
// next hop would be the hub's callback.
type browser struct {
	t testing.TB
	c *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), hubOrigin+"/") {
				return http.ErrUseLastResponse
			}
			if len(via) > 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}}
}

func (b *browser) do(method, u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	return resp, string(text)
}

// atHub returns the query of a redirect to the hub, or nil.
func atHub(resp *http.Response, prefix string) url.Values {
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, prefix) {
		return nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil
	}
	return u.Query()
}

var formTag = regexp.MustCompile(`(?s)<form\b[^>]*>`)
var attr = regexp.MustCompile(`\b(id|action|name|value)="([^"]*)"`)

// form finds the form with the given id and returns its absolute action URL.
func form(resp *http.Response, body, id string) (string, bool) {
	for _, tag := range formTag.FindAllString(body, -1) {
		attrs := map[string]string{}
		for _, m := range attr.FindAllStringSubmatch(tag, -1) {
			attrs[m[1]] = html.UnescapeString(m[2])
		}
		if attrs["id"] == id {
			u, err := resp.Request.URL.Parse(attrs["action"])
			if err != nil {
				return "", false
			}
			return u.String(), true
		}
	}
	return "", false
}

// visit follows authURL. Either the provider still has a session and sends the browser straight
// back (callback query) or it shows its login form (loginAction).
func (b *browser) visit(authURL string) (callback url.Values, loginAction string) {
	b.t.Helper()
	resp, body := b.do(http.MethodGet, authURL, nil)
	if q := atHub(resp, redirectURL); q != nil {
		return q, ""
	}
	action, ok := form(resp, body, "kc-form-login")
	if !ok {
		b.t.Fatalf("GET %s: neither a redirect to the hub nor a login form: %s\n%s", authURL, resp.Status, body)
	}
	return nil, action
}

// login signs user in (password <user>-pw) at authURL and returns the callback query.
func (b *browser) login(authURL, user string) url.Values {
	b.t.Helper()
	q, action := b.visit(authURL)
	if q != nil {
		b.t.Fatalf("expected the login form at %s, was sent straight back (an IdP session was still alive)", authURL)
	}
	resp, body := b.do(http.MethodPost, action, url.Values{"username": {user}, "password": {user + "-pw"}})
	q = atHub(resp, redirectURL)
	if q == nil {
		b.t.Fatalf("login as %s: no redirect to the hub: %s\n%s", user, resp.Status, body)
	}
	return q
}

// logout follows a LogoutURL and confirms the provider's logout form (it always asks once);
// it returns the query of the redirect to the post-logout URL.
func (b *browser) logout(logoutURL string) url.Values {
	b.t.Helper()
	resp, body := b.do(http.MethodGet, logoutURL, nil)
	action, ok := form(resp, body, "op.logoutForm")
	if !ok {
		b.t.Fatalf("GET %s: no logout form: %s\n%s", logoutURL, resp.Status, body)
	}
	m := regexp.MustCompile(`name="xsrf" value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("logout form without xsrf: %s", body)
	}
	resp, body = b.do(http.MethodPost, action, url.Values{"xsrf": {html.UnescapeString(m[1])}, "logout": {"yes"}})
	q := atHub(resp, postLogoutURL)
	if q == nil {
		b.t.Fatalf("confirming logout: no redirect to %s: %s %s\n%s", postLogoutURL, resp.Status, resp.Header.Get("Location"), body)
	}
	return q
}

// signJWT makes an RS256 JWT with key: tokens the provider never issued.
func signJWT(t testing.TB, key *rsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// roundTrip lets a test stand between the Provider and the identity provider.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func jsonResponse(r *http.Request, status int, v any) *http.Response {
	b, _ := json.Marshal(v)
	return &http.Response{
		StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    io.NopCloser(bytes.NewReader(b)),
		Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
}

// wantErr fails unless err wraps every one of targets.
func wantErr(t testing.TB, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %q does not wrap %q", err, target)
		}
	}
	t.Logf("refused as expected: %v", err)
}
