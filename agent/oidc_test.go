package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/test/oidcpeer"
)

// These tests log in through the hub against the real Keycloak-shaped provider in
// test/oidc-provider. Spawning after an OIDC login is covered in the VM suite (test/e2e).

type oidcHub struct {
	*Hub
	url   string
	idp   *oidcpeer.Peer
	units *standInUnits
	logs  *syncBuffer // what the hub logged
}

// newOIDCHub starts a provider and a hub that logs in there: jupyter-users may log in,
// jupyter-admins are admins.
func newOIDCHub(t *testing.T, providerEnv ...string) *oidcHub {
	t.Helper()
	return newOIDCHubWith(t, nil, providerEnv...)
}

// newOIDCHubWith is newOIDCHub with the hub's configuration changed by edit (when not nil).
func newOIDCHubWith(t *testing.T, edit func(*config.Config), providerEnv ...string) *oidcHub {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener.Close()
	srv.Listener = ln
	hubURL := "http://" + ln.Addr().String()
	peer := oidcpeer.Start(t, hubURL, providerEnv...)

	cfg := config.Default()
	cfg.Hub.DataDir = t.TempDir()
	cfg.Hub.PublicURL = hubURL
	cfg.Auth.Method = "oidc"
	cfg.Auth.AllowedGroups = []string{"jupyter-users"}
	cfg.Auth.AdminGroups = []string{"jupyter-admins"}
	cfg.Auth.OIDC.Issuer = peer.Issuer
	cfg.Auth.OIDC.ClientSecretFile = filepath.Join(cfg.Hub.DataDir, "client-secret")
	os.WriteFile(cfg.Auth.OIDC.ClientSecretFile, []byte(oidcpeer.ClientSecret), 0o600)
	if edit != nil {
		edit(&cfg)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	idp, err := NewOpenIDProvider(context.Background(), cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	units := newStandInUnits()
	h, err := New(context.Background(), cfg, Deps{IdP: idp, Logger: log, Units: units, Steps: []servers.Step{units.step()}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h.Handler()
	srv.Start()
	t.Cleanup(func() { srv.Close(); units.closeAll(); h.Close() })
	return &oidcHub{Hub: h, url: hubURL, idp: peer, units: units, logs: logs}
}

// syncBuffer collects a log that several goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// standInUnits stands in for systemd, as hubtest.Units does for the other surfaces' tests (which
// this package cannot import): it is the spawn pipeline's last step, and a "server" is an HTTP
// server on the server's port that answers everything with 200.
type standInUnits struct {
	mu      sync.Mutex
	running map[string]*http.Server // unit name → server
}

func newStandInUnits() *standInUnits { return &standInUnits{running: map[string]*http.Server{}} }

// step is the spawn step that starts a stand-in server.
func (u *standInUnits) step() servers.Step { return standInStep{u} }

type standInStep struct{ u *standInUnits }

func (standInStep) Name() string { return "unit" }

func (s standInStep) Stop(ctx context.Context, sv store.Server) error { return s.u.Stop(ctx, sv.Unit) }

func (s standInStep) Start(ctx context.Context, job *servers.Job) error {
	u := s.u
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(job.Server.Port)))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(ln)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.running[job.Server.Unit] = srv
	return nil
}

func (u *standInUnits) Stop(ctx context.Context, unit string) error {
	u.mu.Lock()
	srv := u.running[unit]
	delete(u.running, unit)
	u.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	return nil
}

func (u *standInUnits) closeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, srv := range u.running {
		srv.Close()
		delete(u.running, name)
	}
}

func (u *standInUnits) List(ctx context.Context) ([]servers.UnitState, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []servers.UnitState
	for name := range u.running {
		out = append(out, servers.UnitState{Unit: name, ActiveState: "active"})
	}
	return out, nil
}

func (u *standInUnits) State(ctx context.Context, unit string) (servers.UnitState, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.running[unit] != nil {
		return servers.UnitState{Unit: unit, ActiveState: "active"}, nil
	}
	return servers.UnitState{Unit: unit, ActiveState: "inactive"}, nil
}

func (u *standInUnits) Journal(ctx context.Context, unit string, lines int, since time.Time) ([]string, error) {
	return nil, nil
}

type person struct {
	t *testing.T
	c *http.Client
}

func newPerson(t *testing.T) *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: t, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

func (p *person) get(u string) (*http.Response, string) {
	p.t.Helper()
	resp, err := p.c.Get(u)
	if err != nil {
		p.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// login starts at the hub's login button and fills in the provider's form.
func (p *person) login(hubURL, user string) (*http.Response, string) {
	p.t.Helper()
	resp, page := p.get(hubURL + "/hub/oauth_login?next=%2Fhub%2Fhome")
	if !oidcpeer.IsLoginForm(page) {
		return resp, page // already logged in at the provider, or an error
	}
	resp, page, err := oidcpeer.SubmitLogin(context.Background(), p.c, resp.Request.URL.String(), page, user, user+"-pw")
	if err != nil {
		p.t.Fatal(err)
	}
	return resp, page
}

func (p *person) loggedIn(hubURL string) bool {
	resp, _ := p.get(hubURL + "/hub/home")
	return resp.Request.URL.Path == "/hub/home"
}

func TestOIDCGroupsDecideWhoMayLogInAndWhoIsAdmin(t *testing.T) {
	h := newOIDCHub(t)
	ctx := context.Background()

	alice := newPerson(t)
	if resp, page := alice.login(h.url, "alice"); resp.Request.URL.Path != "/hub/home" || !strings.Contains(page, "Start my server") {
		t.Fatalf("alice landed on %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	if u, _ := h.Store().GetUser(ctx, "alice"); u.Admin || !strings.Contains(strings.Join(u.Groups, ","), "jupyter-users") {
		t.Errorf("alice = %+v", u)
	}

	carol := newPerson(t)
	resp, page := carol.login(h.url, "carol")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "carol") || !strings.Contains(page, "not allowed") {
		t.Errorf("carol got %d:\n%s", resp.StatusCode, page)
	}
	if carol.loggedIn(h.url) {
		t.Error("carol has a session")
	}

	dave := newPerson(t)
	dave.login(h.url, "dave")
	if u, _ := h.Store().GetUser(ctx, "dave"); !u.Admin {
		t.Errorf("dave in jupyter-admins is not admin: %+v", u)
	}
	h.idp.Admin(t, "users/dave", `{"groups": ["/jupyter-users"]}`)
	dave.get(h.url + "/hub/logout")
	dave = newPerson(t)
	dave.login(h.url, "dave")
	if u, _ := h.Store().GetUser(ctx, "dave"); u.Admin || !dave.loggedIn(h.url) {
		t.Errorf("dave left jupyter-admins but is still admin (or cannot log in): %+v", u)
	}
}

// Keycloak's console shows groups as paths ("/jupyter-users", "/staff/physics"), and the oidc
// package drops the leading "/" from the groups a login brings; configured names written as paths
// used to keep theirs, matched no one and locked everybody out.
func TestOIDCGroupsWrittenAsKeycloakPathsMatch(t *testing.T) {
	h := newOIDCHubWith(t, func(c *config.Config) {
		c.Auth.AllowedGroups = []string{"/staff/physics"}
		c.Auth.AdminGroups = []string{"/jupyter-admins"}
	})
	ctx := context.Background()
	carol := newPerson(t)
	if resp, _ := carol.login(h.url, "carol"); resp.Request.URL.Path != "/hub/home" {
		t.Errorf("carol in /staff/physics landed on %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	newPerson(t).login(h.url, "dave")
	if u, err := h.Store().GetUser(ctx, "dave"); err != nil || !u.Admin {
		t.Errorf("dave in /jupyter-admins is not admin: %+v %v", u, err)
	}
	if resp, _ := newPerson(t).login(h.url, "alice"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("alice, in neither group, got %d", resp.StatusCode)
	}
}

// The refusal page used to list auth.allowed_groups to whoever was refused: anyone with an
// account at the provider learnt which group to social-engineer their way into. The groups go to
// the log, for the administrator.
func TestOIDCRefusalPageKeepsTheAllowedGroupsToTheLog(t *testing.T) {
	h := newOIDCHubWith(t, func(c *config.Config) { c.Auth.AllowedGroups = []string{"jupyter-users", "secret-project"} })
	resp, page := newPerson(t).login(h.url, "carol")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "not allowed") {
		t.Fatalf("carol got %d:\n%s", resp.StatusCode, page)
	}
	for _, g := range []string{"jupyter-users", "secret-project"} {
		if strings.Contains(page, g) {
			t.Errorf("the refusal page names the allowed group %q:\n%s", g, page)
		}
	}
	if logs := h.logs.String(); !strings.Contains(logs, "secret-project") || !strings.Contains(logs, "user=carol") {
		t.Errorf("the log does not say why carol was refused:\n%s", logs)
	}
}

func TestOIDCBadCallbacksGiveAClearPageAndNoSession(t *testing.T) {
	h := newOIDCHub(t)
	noRedirect := func(p *person) {
		p.c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
			if r.URL.Path == "/hub/oauth_callback" {
				return http.ErrUseLastResponse
			}
			return nil
		}
	}
	// A login that stops just before the browser returns to the hub.
	callback := func(p *person) string {
		noRedirect(p)
		resp, page := p.get(h.url + "/hub/oauth_login")
		resp, _, err := oidcpeer.SubmitLogin(context.Background(), p.c, resp.Request.URL.String(), page, "alice", "alice-pw")
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("provider login: %v %v", err, resp)
		}
		p.c.CheckRedirect = nil
		return resp.Header.Get("Location")
	}
	checkRefused := func(name string, p *person, u string) {
		t.Helper()
		resp, page := p.get(u)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 && resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, `class="error"`) {
			t.Errorf("%s: got %d:\n%.500s", name, resp.StatusCode, page)
		}
		if p.loggedIn(h.url) {
			t.Errorf("%s: a session was started", name)
		}
	}

	forged := newPerson(t)
	cb := callback(forged)
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Set("state", "forged")
	u.RawQuery = q.Encode()
	checkRefused("forged state", forged, u.String())

	first := newPerson(t)
	cb = callback(first)
	if resp, _ := first.get(cb); resp.Request.URL.Path != "/hub/home" {
		t.Fatalf("the genuine callback did not log in: %s", resp.Request.URL)
	}
	checkRefused("replayed code", newPerson(t), cb)
	replayer := newPerson(t)
	replayer.get(h.url + "/hub/oauth_login") // a flow cookie of its own, then someone else's code
	checkRefused("replayed code with a fresh flow", replayer, cb)

	// A second provider issues a code for the same client; the hub must not take its word.
	other := oidcpeer.Start(t, h.url)
	stranger := newPerson(t)
	foreign, _ := url.Parse(via(t, h.url+"/hub/oauth_login", stranger)) // the hub's flow cookie, then...
	foreign.Host = strings.TrimPrefix(other.Base, "http://")            // ...log in at the other provider
	noRedirect(stranger)
	resp, page := stranger.get(foreign.String())
	resp, _, err := oidcpeer.SubmitLogin(context.Background(), stranger.c, resp.Request.URL.String(), page, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	stranger.c.CheckRedirect = nil
	checkRefused("code from another issuer", stranger, resp.Header.Get("Location"))

	// The provider goes down between the login form and the callback.
	late := newPerson(t)
	cb = callback(late)
	h.idp.Stop()
	checkRefused("provider down at the callback", late, cb)
	resp, page = newPerson(t).get(h.url + "/hub/login")
	if resp.StatusCode != 200 || !strings.Contains(page, "single sign-on") {
		t.Errorf("login page while the provider is down: %d", resp.StatusCode)
	}
}

// via returns where u redirects first (the provider's authorization URL for /hub/oauth_login).
func via(t *testing.T, u string, p *person) string {
	t.Helper()
	c := *p.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Location")
}

func TestOIDCRefreshBeforeSpawnAndReloginWhenRevoked(t *testing.T) {
	h := newOIDCHub(t, "ACCESS_TTL=5")
	ctx := context.Background()
	alice := newPerson(t)
	alice.login(h.url, "alice")
	u, _ := h.Store().GetUser(ctx, "alice")
	before := h.Gate().AuthState(ctx, u).(json.RawMessage)

	if err := h.Gate().FreshLogin(ctx, u); err != nil {
		t.Fatalf("refresh of an about-to-expire token: %v", err)
	}
	after := h.Gate().AuthState(ctx, u).(json.RawMessage)
	var a, b struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(before, &a)
	json.Unmarshal(after, &b)
	if a.AccessToken == "" || a.AccessToken == b.AccessToken {
		t.Errorf("the access token was not refreshed before the spawn")
	}

	// Once the provider revokes the login, starting a server sends alice to log in again.
	h.idp.Admin(t, "users/alice/revoke", `{}`)
	_, home := alice.get(h.url + "/hub/home")
	m := regexp.MustCompile(`name="_xsrf" value="([^"]+)"`).FindStringSubmatch(home)
	if m == nil {
		t.Fatalf("no form on the home page")
	}
	noFollow := *alice.c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(h.url+"/hub/spawn", url.Values{"_xsrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/hub/login") {
		t.Errorf("spawn with a revoked login: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if alice.loggedIn(h.url) {
		t.Error("alice's hub session survived the revoked login")
	}
	if sv, _ := h.Store().Server(ctx, u.ID, ""); sv.State != store.Stopped {
		t.Errorf("a server was started: %s", sv.State)
	}
}

// eventually waits, polling, until cond holds; it fails the test after 30 seconds, long enough
// for a loaded two-core host.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 30s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spawn presses the home page's start button and returns the hub's answer, unfollowed.
func (p *person) spawn(hubURL string) *http.Response {
	p.t.Helper()
	_, home := p.get(hubURL + "/hub/home")
	m := regexp.MustCompile(`name="_xsrf" value="([^"]+)"`).FindStringSubmatch(home)
	if m == nil {
		p.t.Fatalf("no form on the home page:\n%.600s", home)
	}
	noFollow := *p.c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(hubURL+"/hub/spawn", url.Values{"_xsrf": {m[1]}})
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// apiGet calls the hub's API with the person's cookie (a GET needs no XSRF token from a client
// that is not a browser's script).
func (p *person) apiGet(hubURL, path string) (int, map[string]any) {
	p.t.Helper()
	resp, body := p.get(hubURL + path)
	var m map[string]any
	json.Unmarshal([]byte(body), &m)
	return resp.StatusCode, m
}

func (h *oidcHub) serverState(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	u, err := h.Store().GetUser(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := h.Store().Server(ctx, u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	return sv.State
}

// The refresh before a spawn used to renew only an access token about to expire, and then kept the
// groups of the last login: someone removed from jupyter-users started their server, and a
// demoted admin stayed admin. Now every spawn refreshes the login and applies its groups as a
// login does, both ways. (auth.oidc.refresh_age = 0: only the spawn refreshes.)
func TestOIDCRefreshBeforeSpawnAppliesTheProvidersGroups(t *testing.T) {
	h := newOIDCHubWith(t, func(c *config.Config) { c.Auth.OIDC.RefreshAge = 0 })
	ctx := context.Background()

	alice := newPerson(t)
	alice.login(h.url, "alice")
	h.idp.Admin(t, "users/alice", `{"groups": []}`) // removed from /jupyter-users in Keycloak
	if resp := alice.spawn(h.url); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/hub/login") {
		t.Errorf("spawn by a user no longer in the allowed groups: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st := h.serverState(t, "alice"); st != store.Stopped {
		t.Errorf("alice's server is %s", st)
	}
	if alice.loggedIn(h.url) {
		t.Error("alice is still logged in")
	}

	dave := newPerson(t)
	dave.login(h.url, "dave")
	h.idp.Admin(t, "users/dave", `{"groups": ["/jupyter-users"]}`) // no longer in /jupyter-admins
	if resp := dave.spawn(h.url); resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/hub/spawn-pending/dave") {
		t.Errorf("dave, still allowed, could not spawn: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if u, _ := h.Store().GetUser(ctx, "dave"); u.Admin || strings.Contains(strings.Join(u.Groups, ","), "jupyter-admins") {
		t.Errorf("dave left jupyter-admins before his spawn but is %+v", u)
	}
}

// A demoted admin kept admin (through the cookie and their API tokens) until their next
// interactive login, up to hub.cookie_max_age (14 days). With auth.oidc.refresh_age past, the next
// request refreshes the login first; 1ns makes every request due, so the test needs no clock.
func TestOIDCDemotedAdminLosesAdminAtTheNextRequest(t *testing.T) {
	h := newOIDCHubWith(t, func(c *config.Config) { c.Auth.OIDC.RefreshAge = config.Duration(time.Nanosecond) })
	ctx := context.Background()
	dave := newPerson(t)
	dave.login(h.url, "dave")
	u, _ := h.Store().GetUser(ctx, "dave")
	_, token, _ := h.Store().CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"inherit"}})
	if status, _ := dave.apiGet(h.url, "/hub/api/users"); status != http.StatusOK {
		t.Fatalf("dave, an admin, cannot list users: %d", status)
	}

	// His script's API token is the first to ask; then his browser.
	h.idp.Admin(t, "users/dave", `{"groups": ["/jupyter-users"]}`)
	if status := apiGetWithToken(t, h.url, "/hub/api/users", token); status != http.StatusForbidden {
		t.Errorf("dave still lists users with his API token: %d", status)
	}
	if status, me := dave.apiGet(h.url, "/hub/api/user"); status != http.StatusOK || me["admin"] != false {
		t.Errorf("after leaving jupyter-admins, dave's next request: %d, admin %v", status, me["admin"])
	}
	if status, _ := dave.apiGet(h.url, "/hub/api/users"); status != http.StatusForbidden {
		t.Errorf("dave still lists users with his cookie: %d", status)
	}

	// Back in the group, he is admin again at his next request: the provider's groups decide
	// both ways, as at login.
	h.idp.Admin(t, "users/dave", `{"groups": ["/jupyter-users", "/jupyter-admins"]}`)
	if status, _ := dave.apiGet(h.url, "/hub/api/users"); status != http.StatusOK {
		t.Errorf("dave, back in jupyter-admins, cannot list users: %d", status)
	}
}

// apiGetWithToken is a GET of the hub's API with an API token; it returns the status.
func apiGetWithToken(t *testing.T, hubURL, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", hubURL+path, nil)
	req.Header.Set("Authorization", "token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The periodic refresh happens at most once per auth.oidc.refresh_age: requests within it are
// served from what the hub knows, without asking the provider.
func TestOIDCRefreshAgePacesTheRefreshes(t *testing.T) {
	h := newOIDCHubWith(t, func(c *config.Config) { c.Auth.OIDC.RefreshAge = config.Duration(time.Hour) })
	ctx := context.Background()
	dave := newPerson(t)
	dave.login(h.url, "dave")
	u, _ := h.Store().GetUser(ctx, "dave")
	before := string(h.Gate().AuthState(ctx, u).(json.RawMessage))
	h.idp.Admin(t, "users/dave", `{"groups": ["/jupyter-users"]}`)
	for range 3 {
		if status, me := dave.apiGet(h.url, "/hub/api/user"); status != http.StatusOK || me["admin"] != true {
			t.Errorf("within refresh_age: %d, admin %v", status, me["admin"])
		}
	}
	if after := string(h.Gate().AuthState(ctx, u).(json.RawMessage)); after != before {
		t.Error("the login was refreshed within auth.oidc.refresh_age")
	}
}

// A user who lost access (removed from the allowed groups, or a login the provider no longer
// renews) used to keep their hub session, their servers' OAuth tokens and their running server
// until their cookie expired. Now the refresh at their next request logs them out everywhere, and
// auth.oidc.on_lost_access says whether their server stops ("stop", the default) or keeps running.
func TestOIDCLostAccessLogsOutAndStopsServers(t *testing.T) {
	for _, tc := range []struct {
		name, onLost string
		lose         func(*oidcHub)
	}{
		{"removed from the allowed groups", "stop", func(h *oidcHub) { h.idp.Admin(t, "users/alice", `{"groups": ["/staff/physics"]}`) }},
		{"provider no longer renews the login", "stop", func(h *oidcHub) { h.idp.Admin(t, "users/alice/revoke", `{}`) }},
		{"removed, servers kept", "keep", func(h *oidcHub) { h.idp.Admin(t, "users/alice", `{"groups": []}`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newOIDCHubWith(t, func(c *config.Config) {
				c.Auth.OIDC.RefreshAge = config.Duration(time.Nanosecond)
				c.Auth.OIDC.OnLostAccess = tc.onLost
			})
			ctx := context.Background()
			alice := newPerson(t)
			alice.login(h.url, "alice")
			if resp := alice.spawn(h.url); resp.StatusCode != http.StatusFound {
				t.Fatalf("spawn: %d", resp.StatusCode)
			}
			eventually(t, "alice's server runs", func() bool { return h.serverState(t, "alice") == store.Running })
			_, body := alice.get(h.url + "/hub/api/user")
			var me struct {
				SessionID string `json:"session_id"`
			}
			json.Unmarshal([]byte(body), &me)
			u, _ := h.Store().GetUser(ctx, "alice")
			// The OAuth token her server holds for this browser login, and an API token of hers.
			_, serverCookie, _ := h.Store().CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindOAuth, SessionID: me.SessionID, Scopes: []string{"access:servers!server=alice/"}})
			_, apiToken, _ := h.Store().CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"inherit"}})

			tc.lose(h)
			if alice.loggedIn(h.url) {
				t.Fatal("alice is still logged in after losing access")
			}
			if _, err := h.Gate().FromToken(ctx, serverCookie); err == nil {
				t.Error("her server's OAuth token for the ended login still works")
			}
			if status := apiGetWithToken(t, h.url, "/hub/api/user", apiToken); status != http.StatusForbidden {
				t.Errorf("her API token still works: %d", status)
			}
			// The stop was asked for before the request that found the loss was answered.
			if st := h.serverState(t, "alice"); tc.onLost == "stop" && st == store.Running {
				t.Error("her server still runs")
			} else if tc.onLost == "keep" && st != store.Running {
				t.Errorf("on_lost_access = keep, but her server is %s", st)
			}
			if tc.onLost == "stop" {
				eventually(t, "alice's server has stopped", func() bool { return h.serverState(t, "alice") == store.Stopped })
				// Her own API token cannot start it again: the hub remembers that her login ended.
				req, _ := http.NewRequest("POST", h.url+"/hub/api/users/alice/server", nil)
				req.Header.Set("Authorization", "token "+apiToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("spawn with her API token after losing access: %s", resp.Status)
				}
				if st := h.serverState(t, "alice"); st != store.Stopped {
					t.Errorf("her server is %s after the spawn through the API", st)
				}
			}
			// Logging in again, once she may, works as any login.
			h.idp.Admin(t, "users/alice", `{"groups": ["/jupyter-users"]}`)
			again := newPerson(t)
			if resp, _ := again.login(h.url, "alice"); resp.Request.URL.Path != "/hub/home" {
				t.Errorf("alice, allowed again, cannot log in: %s", resp.Request.URL)
			}
			if resp := again.spawn(h.url); tc.onLost == "stop" && resp.StatusCode != http.StatusFound {
				t.Errorf("alice, allowed again, cannot spawn: %d", resp.StatusCode)
			}
		})
	}
}

// Keycloak refuses to renew a login whose session ran past its idle or max time just as it refuses
// a revoked one. Such a login ran its course: its user logs in again, and their server, maybe busy
// with a long job, goes on. Only a refusal before the refresh token's expiry (which the provider
// gives with every token, refresh_expires_in) counts as a lost access.
func TestOIDCLoginThatRanOutOnlyLogsOut(t *testing.T) {
	h := newOIDCHubWith(t, func(c *config.Config) { c.Auth.OIDC.RefreshAge = config.Duration(time.Nanosecond) }, "REFRESH_TTL=2")
	ctx := context.Background()
	alice := newPerson(t)
	alice.login(h.url, "alice")
	u, _ := h.Store().GetUser(ctx, "alice")
	var state struct {
		RefreshExpiry time.Time `json:"refresh_expiry"`
	}
	json.Unmarshal(h.Gate().AuthState(ctx, u).(json.RawMessage), &state)
	if state.RefreshExpiry.IsZero() {
		t.Fatal("the hub did not record when the refresh token runs out")
	}
	// Her server starts straight through the core: no request of hers refreshes the login now.
	if _, err := h.Servers().Start(u, "", nil); err != nil {
		t.Fatal(err)
	}
	_, apiToken, _ := h.Store().CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"inherit"}})
	eventually(t, "alice's server runs", func() bool { return h.serverState(t, "alice") == store.Running })
	eventually(t, "her refresh token has run out", func() bool { return time.Now().After(state.RefreshExpiry.Add(time.Second)) })

	if alice.loggedIn(h.url) {
		t.Fatal("alice is still logged in with a login the provider no longer renews")
	}
	if st := h.serverState(t, "alice"); st != store.Running {
		t.Errorf("her server is %s: a login that ran out stopped it", st)
	}
	req, _ := http.NewRequest("POST", h.url+"/hub/api/users/alice/server", nil)
	req.Header.Set("Authorization", "token "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || h.serverState(t, "alice") != store.Running {
		t.Errorf("spawn through her API token with the login run out: %s, server %s", resp.Status, h.serverState(t, "alice"))
	}
	// Her scripts go on: she is still allowed as far as anyone knows.
	if status := apiGetWithToken(t, h.url, "/hub/api/user", apiToken); status != http.StatusOK {
		t.Errorf("her API token no longer works: %d", status)
	}
	if resp, _ := newPerson(t).login(h.url, "alice"); resp.Request.URL.Path != "/hub/home" {
		t.Errorf("alice cannot log in again: %s", resp.Request.URL)
	}
}

// When the provider cannot be reached, nobody is logged out and spawns go on while the stored
// access token is good for longer than auth.oidc.refresh_before: an outage of Keycloak must not
// empty the hub.
func TestOIDCProviderDownKeepsLoginsAndSpawns(t *testing.T) {
	h := newOIDCHubWith(t, func(c *config.Config) { c.Auth.OIDC.RefreshAge = config.Duration(time.Nanosecond) })
	alice := newPerson(t)
	alice.login(h.url, "alice")
	h.idp.Stop()
	if !alice.loggedIn(h.url) {
		t.Fatal("alice was logged out because the provider is down")
	}
	if resp := alice.spawn(h.url); resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/hub/spawn-pending/alice") {
		t.Errorf("spawn while the provider is down: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !alice.loggedIn(h.url) {
		t.Error("alice was logged out after her spawn")
	}
}

// The provider rotates refresh tokens and revokes the whole login when a spent one comes back
// (Keycloak with "Revoke Refresh Token" on): concurrent requests of one user must refresh one
// after the other, each with the newest token, or the second would end her login.
func TestOIDCConcurrentRequestsRefreshOneAtATime(t *testing.T) {
	h := newOIDCHubWith(t, func(c *config.Config) { c.Auth.OIDC.RefreshAge = config.Duration(time.Nanosecond) }, "REFRESH_ROTATION=rotate")
	alice := newPerson(t)
	alice.login(h.url, "alice")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := alice.c.Get(h.url + "/hub/api/user")
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if !alice.loggedIn(h.url) {
		t.Error("concurrent refreshes ended alice's login")
	}
}

func TestOIDCLogoutEndsTheProviderSessionAndServerTokens(t *testing.T) {
	h := newOIDCHub(t)
	ctx := context.Background()
	alice := newPerson(t)
	alice.login(h.url, "alice")
	_, body := alice.get(h.url + "/hub/api/user")
	var me struct {
		SessionID string `json:"session_id"`
	}
	json.Unmarshal([]byte(body), &me)
	u, _ := h.Store().GetUser(ctx, "alice")
	// The OAuth token a single-user server would hold for this browser login.
	_, serverCookie, _ := h.Store().CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindOAuth, SessionID: me.SessionID, Scopes: []string{"access:servers!server=alice/"}})

	resp, page := alice.get(h.url + "/hub/logout")
	if !strings.HasPrefix(resp.Request.URL.String(), h.idp.Base) {
		t.Fatalf("logout did not go to the provider: %s", resp.Request.URL)
	}
	resp, _, err := oidcpeer.ConfirmLogout(ctx, alice.c, resp.Request.URL.String(), page)
	if err != nil || resp.Request.URL.Path != "/hub/login" {
		t.Fatalf("provider logout: %v, ended at %v", err, resp)
	}
	if tok, err := h.Gate().FromToken(ctx, serverCookie); err == nil {
		t.Errorf("the server's OAuth token still works after logout: %+v", tok.User)
	}
	if _, page := alice.get(h.url + "/hub/oauth_login"); !oidcpeer.IsLoginForm(page) {
		t.Error("after logout the next login did not show the provider's form: the provider session lived on")
	}
}

func TestOIDCBackchannelLogoutEndsHubSessions(t *testing.T) {
	h := newOIDCHub(t)
	alice := newPerson(t)
	alice.login(h.url, "alice")
	if !alice.loggedIn(h.url) {
		t.Fatal("alice cannot log in")
	}
	h.idp.Admin(t, "users/alice/logout", `{}`) // an admin signs her out in the provider's console
	if alice.loggedIn(h.url) {
		t.Error("alice's hub session survived the provider's back-channel logout")
	}
	resp, err := http.PostForm(h.url+"/hub/oauth_backchannel_logout", url.Values{"logout_token": {"forged"}})
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged logout token: %v %v", err, resp)
	}
}

// serve used to start with a client secret file that anyone on the host could read; it refuses
// now, naming the key and the fix, with the exit status for configuration errors.
func TestOIDCSecretFileOthersCanReadStopsTheHub(t *testing.T) {
	peer := oidcpeer.Start(t, "http://127.0.0.1:8000")
	cfg := config.Default()
	cfg.Hub.DataDir = t.TempDir()
	cfg.Hub.PublicURL = "http://127.0.0.1:8000"
	cfg.Auth.Method = "oidc"
	cfg.Auth.OIDC.Issuer = peer.Issuer
	cfg.Auth.OIDC.ClientSecretFile = filepath.Join(t.TempDir(), "client-secret")
	os.WriteFile(cfg.Auth.OIDC.ClientSecretFile, []byte(oidcpeer.ClientSecret), 0o644)
	os.Chmod(cfg.Auth.OIDC.ClientSecretFile, 0o644)
	h, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		h.Close()
	}
	var ce ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "auth.oidc.client_secret_file") ||
		!strings.Contains(err.Error(), "chmod 600 "+cfg.Auth.OIDC.ClientSecretFile) {
		t.Errorf("Open with a secret file mode 0644: %v", err)
	}
}

func TestOIDCProviderDownAtStartIsReportedAtLogin(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s"), 0o600)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.Hub.DataDir = t.TempDir()
	cfg.Hub.PublicURL = "http://127.0.0.1:9"
	cfg.Auth.OIDC.Issuer = "http://127.0.0.1:9/realms/test"
	cfg.Auth.OIDC.ClientSecretFile = secret
	th, err := New(context.Background(), cfg, Deps{Logger: log, IdP: &lateProvider{connect: func(ctx context.Context) (auth.IdentityProvider, error) {
		return NewOpenIDProvider(ctx, cfg, nil, log)
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	srv := httptest.NewServer(th.Handler())
	defer srv.Close()
	p := newPerson(t)
	resp, page := p.get(srv.URL + "/hub/oauth_login")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "cannot be reached") {
		t.Errorf("login with the provider down: %d\n%.600s", resp.StatusCode, page)
	}
}
