// Package oidcpeer runs test/oidc-provider, the project's Keycloak-shaped OpenID provider, for
// tests of the hub: it starts the real Node.js provider on a free loopback port and drives its
// login and logout forms the way a browser with a cookie jar would.
package oidcpeer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Client credentials the provider is started with.
const (
	ClientID     = "jupyterhub"
	ClientSecret = "jupyterhub-secret"
)

// Peer is a running provider.
type Peer struct {
	Issuer string // http://127.0.0.1:PORT/realms/test
	Base   string // http://127.0.0.1:PORT
	cmd    *exec.Cmd
	done   chan struct{}
	stdin  io.WriteCloser // held open: the provider exits when it closes
	stderr lockedWriter
}

// Dir is where the provider's package lives: $JHGO_OIDC_PROVIDER_DIR, or test/oidc-provider in
// this source tree.
func Dir() string {
	if d := os.Getenv("JHGO_OIDC_PROVIDER_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "oidc-provider")
}

// ErrNoNode means Node.js is not installed, so the provider cannot run.
var ErrNoNode = errors.New("node is not installed: the OIDC tests run test/oidc-provider (Node.js 20+)")

var (
	npmOnce sync.Once
	npmErr  error
)

// install runs npm ci unless a complete install is there. Test binaries of several packages run
// at once and npm ci starts by deleting node_modules, so they take turns under a file lock, and
// only npm's own end-of-install record counts as "installed".
func install(dir string) error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "jhgo-oidc-provider-npm.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	return nil
}

// Node finds the node binary: $JHGO_NODE, or node on PATH; ErrNoNode if there is none.
func Node() (string, error) {
	if node, err := exec.LookPath(os.Getenv("JHGO_NODE")); err == nil {
		return node, nil
	}
	if node, err := exec.LookPath("node"); err == nil {
		return node, nil
	}
	return "", ErrNoNode
}

// Run starts the provider with the given settings (see test/oidc-provider/README.md) on a free
// port. It lives until Stop, or until this process exits.
func Run(env ...string) (*Peer, error) {
	node, err := Node()
	if err != nil {
		return nil, err
	}
	dir := Dir()
	npmOnce.Do(func() { npmErr = install(dir) })
	if npmErr != nil {
		return nil, npmErr
	}
	p := &Peer{done: make(chan struct{})}
	p.cmd = exec.Command(node, "server.mjs")
	p.cmd.Dir = dir
	p.cmd.Env = append(append(os.Environ(), "PORT=0", "EXIT_WITH_STDIN=1"), env...)
	p.cmd.Stderr = &p.stderr
	p.stdin, _ = p.cmd.StdinPipe() // closed when this process dies, so the provider follows it
	stdout, _ := p.cmd.StdoutPipe()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start OIDC provider: %w", err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, iss, ok := strings.Cut(sc.Text(), "ready issuer="); ok {
				ready <- iss
			}
		}
		p.cmd.Wait() // after the last read, as Wait closes stdout
		close(p.done)
	}()
	select {
	case p.Issuer = <-ready:
	case <-p.done:
		return nil, fmt.Errorf("OIDC provider exited at start: %s", p.Stderr())
	case <-time.After(2 * time.Minute):
		// It says "ready" within ~3 s on an idle host; this only keeps a hung node from
		// hanging the suite, and is long enough not to lose against a loaded 2-core host.
		p.Stop()
		return nil, fmt.Errorf("OIDC provider not ready after 2 minutes: %s", p.Stderr())
	}
	u, _ := url.Parse(p.Issuer)
	p.Base = u.Scheme + "://" + u.Host
	return p, nil
}

// Start runs the provider for the life of the test, set up for a hub at hubURL: it accepts the
// hub's callback, login page (after logout) and back-channel logout endpoint. env adds settings
// such as ACCESS_TTL=5.
func Start(t testing.TB, hubURL string, env ...string) *Peer {
	t.Helper()
	hubURL = strings.TrimSuffix(hubURL, "/")
	p, err := Run(append([]string{"CLIENT_ID=" + ClientID, "CLIENT_SECRET=" + ClientSecret,
		"REDIRECT_URIS=" + hubURL + "/hub/oauth_callback", "POST_LOGOUT_URIS=" + hubURL + "/hub/login",
		"BACKCHANNEL_LOGOUT_URI=" + hubURL + "/hub/oauth_backchannel_logout"}, env...)...)
	if errors.Is(err, ErrNoNode) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// Stderr is what the provider printed on stderr so far.
func (p *Peer) Stderr() string {
	return p.stderr.String()
}

// Done is closed when the provider has exited.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Stop kills the provider (an identity provider going down).
func (p *Peer) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Admin calls the provider's /test/ API, e.g. ("users/dave", `{"groups": [...]}`).
func (p *Peer) Admin(t testing.TB, path, body string) {
	t.Helper()
	resp, err := http.Post(p.Base+"/test/"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("provider /test/%s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("provider /test/%s = %d %s", path, resp.StatusCode, b)
	}
}

var (
	loginForm  = regexp.MustCompile(`(?s)<form[^>]*id="kc-form-login"[^>]*>`)
	logoutForm = regexp.MustCompile(`(?s)<form[^>]*id="op.logoutForm"[^>]*>.*?</form>`)
	action     = regexp.MustCompile(`action="([^"]*)"`)
	xsrf       = regexp.MustCompile(`name="xsrf" value="([^"]*)"`)
)

// IsLoginForm reports whether a page is the provider's login form.
func IsLoginForm(page string) bool { return loginForm.MatchString(page) }

// SubmitLogin posts username and password into the login form page (reached at pageURL) and
// returns where the browser ends up.
func SubmitLogin(ctx context.Context, c *http.Client, pageURL, page, user, password string) (*http.Response, string, error) {
	form := loginForm.FindString(page)
	m := action.FindStringSubmatch(form)
	if m == nil {
		return nil, "", fmt.Errorf("no login form in page at %s", pageURL)
	}
	return post(ctx, c, pageURL, m[1], url.Values{"username": {user}, "password": {password}})
}

// ConfirmLogout answers the provider's logout confirmation page.
func ConfirmLogout(ctx context.Context, c *http.Client, pageURL, page string) (*http.Response, string, error) {
	form := logoutForm.FindString(page)
	a, x := action.FindStringSubmatch(form), xsrf.FindStringSubmatch(form)
	if a == nil || x == nil {
		return nil, "", fmt.Errorf("no logout form in page at %s", pageURL)
	}
	return post(ctx, c, pageURL, a[1], url.Values{"xsrf": {x[1]}, "logout": {"yes"}})
}

func post(ctx context.Context, c *http.Client, pageURL, act string, form url.Values) (*http.Response, string, error) {
	base, _ := url.Parse(pageURL)
	target, err := base.Parse(html.UnescapeString(act))
	if err != nil {
		return nil, "", err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}
