// Package e2e drives a real jupyterhub-go against real systemd, PAM and Debian's stock
// jupyterhub-singleuser. It runs as root inside the test VM (test/integration.sh builds it with
// `go test -c` and test/guest/run-tests.sh runs it there, with users alice and bob created by
// test/guest/setup.sh). Anywhere else it skips.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/jupyterhub-go/jupyterhub-go/test/jupyterclient"
)

const (
	hubAddr  = "127.0.0.1:8000"
	hubURL   = "http://" + hubAddr
	unit     = "jupyter-alice.service"
	memMax   = 1 << 30
	cpuQuota = 150 // percent
	tasksMax = 300
)

func TestMain(m *testing.M) {
	if os.Getenv("JHGO_E2E") != "1" || os.Getenv("JHGO_BIN") == "" {
		fmt.Println("e2e: skipped (runs as root in the test VM: make integration)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hub is a jupyterhub-go process the test starts, kills and restarts.
type hub struct {
	t       *testing.T
	cfgPath string
	logPath string
	cmd     *exec.Cmd
	addr    string
	env     []string // more environment for the hub process, e.g. JUPYTER_NFS_IP=...
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startHub(t *testing.T, cfgPath, addr string, env ...string) *hub {
	t.Helper()
	h := &hub{t: t, cfgPath: cfgPath, logPath: cfgPath + ".log", addr: addr, env: env}
	h.start()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(h.logPath)
			lines := strings.Split(string(b), "\n")
			t.Logf("hub log (last 60 lines):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
		h.signal(syscall.SIGTERM)
	})
	return h
}

func (h *hub) start() {
	h.t.Helper()
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	h.cmd = exec.Command(os.Getenv("JHGO_BIN"), "--config", h.cfgPath, "serve")
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.Env = append(os.Environ(), h.env...) // on bookworm, JUPYTERHUB_SINGLEUSER_APP picks the classic notebook (run-tests.sh)
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + h.addr + "/hub/health"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("hub did not answer /hub/health within 30s")
}

// signal stops the hub with sig and waits for it to exit.
func (h *hub) signal(sig syscall.Signal) {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	h.cmd.Process.Signal(sig)
	h.cmd.Wait()
	h.cmd = nil
}

// browser is a person with a cookie jar.
type browser struct {
	t      *testing.T
	client *http.Client
	base   string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 60 * time.Second}, base: base}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.Get(b.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) login(user, password string) (*http.Response, string) {
	b.t.Helper()
	resp, body, err := jupyterclient.Login(b.client, b.base, user, password, "/hub/home", nil)
	if err != nil {
		b.t.Fatalf("login as %s: %v", user, err)
	}
	return resp, body
}

var xsrfField = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)

func (b *browser) xsrf(page string) string {
	m := xsrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no _xsrf field in page:\n%s", page)
	}
	return m[1]
}

func (b *browser) cookie(path, name string) string {
	u, _ := url.Parse(b.base + path)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// progress reads the spawn progress stream until the ready or failed event.
func (b *browser) progress(path string, timeout time.Duration) []jupyterclient.Event {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	events, err := jupyterclient.Progress(ctx, b.client, b.base+path)
	if err != nil {
		b.t.Fatal(err)
	}
	return events
}

// spawn starts user's default server with the home page's button, as a person does, and returns
// the progress events once the spawn has ended, each one logged.
func (b *browser) spawn(t *testing.T, user string, timeout time.Duration) []jupyterclient.Event {
	t.Helper()
	_, home := b.get("/hub/home")
	b.post("/hub/spawn", url.Values{"_xsrf": {b.xsrf(home)}})
	events := b.progress("/hub/api/users/"+user+"/server/progress", timeout)
	for _, ev := range events {
		t.Logf("  progress %3d%%: %s", ev.Progress, ev.Message)
	}
	if len(events) == 0 {
		t.Fatalf("%s's spawn sent no progress", user)
	}
	return events
}

// spawnReady is spawn for a server that must start; it returns the progress messages.
func (b *browser) spawnReady(t *testing.T, user string, timeout time.Duration) []string {
	t.Helper()
	events := b.spawn(t, user, timeout)
	if last := events[len(events)-1]; !last.Ready {
		t.Fatalf("%s's spawn did not become ready: %s", user, last.Message)
	}
	msgs := make([]string, 0, len(events))
	for _, ev := range events {
		msgs = append(msgs, ev.Message)
	}
	return msgs
}

// apiDo calls the hub of the spine tests; apiAt, a hub at base.
func apiDo(t *testing.T, method, path, token, body string) (int, []byte) {
	t.Helper()
	return apiAt(t, hubURL, method, path, token, body)
}

func apiAt(t *testing.T, base, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func unitProps(t *testing.T, name string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := sd.NewSystemConnectionContext(context.WithoutCancel(ctx))
	if err != nil {
		t.Fatalf("connect to systemd: %v", err)
	}
	defer conn.Close()
	props, err := conn.GetUnitTypePropertiesContext(ctx, name, "Service")
	if err != nil {
		t.Fatalf("properties of %s: %v", name, err)
	}
	unitProps, err := conn.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		t.Fatalf("properties of %s: %v", name, err)
	}
	for k, v := range unitProps {
		props[k] = v
	}
	return props
}

// classic says whether servers run the classic notebook (bookworm's jupyterhub-singleuser 3.0)
// rather than JupyterLab on jupyter_server (trixie's 5.2.1).
func classic() bool { return os.Getenv("JUPYTERHUB_SINGLEUSER_APP") != "" }

// ui is where a user's server shows its UI: /tree in the classic notebook, /lab in JupyterLab.
func ui(user string) string {
	if classic() {
		return "/user/" + user + "/tree"
	}
	return "/user/" + user + "/lab"
}

// runInKernel runs code in a new kernel of user's server, over its WebSocket through the router.
func runInKernel(t *testing.T, b *browser, user, code string) string {
	t.Helper()
	out, err := jupyterclient.RunCode(b.client, nil, b.base+"/user/"+user+"/", code)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// onlyOn runs a long test in one of the two guests: the hub's code is the same in both, the
// single-user servers differ only in ways the shorter tests cover in each, and running every long
// test twice would take CI past an hour. JHGO_E2E_EVERY_SUITE=1 runs it in both.
func onlyOn(t *testing.T, codename string) {
	t.Helper()
	if os.Getenv("JHGO_E2E_EVERY_SUITE") == "1" {
		return
	}
	b, _ := os.ReadFile("/etc/os-release")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok && v != codename {
			t.Skipf("long test: runs in the %s guest only (JHGO_E2E_EVERY_SUITE=1 runs it here too)", codename)
		}
	}
}
