package packaging

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/test/jupyterclient"

	"github.com/gorilla/websocket"
)

// What the test sets up, as README.md's "Install" section tells an administrator to.
const (
	// The shipped nginx site's server_name; the test's clients dial it at 127.0.0.1.
	siteName = "jupyter.example.org"
	site     = "/etc/nginx/sites-available/jupyterhub-go.conf"
	certFile = "/etc/ssl/certs/jupyterhub-go.crt"
	keyFile  = "/etc/ssl/private/jupyterhub-go.key"
	confFile = "/etc/jupyterhub-go/config.toml"
	pamFile  = "/etc/pam.d/jupyterhub-go"
	dataDir  = "/var/lib/jupyterhub-go"
	hubUnit  = "jupyterhub-go.service"
	userUnit = "jupyter-alice.service"
	hubAddr  = "127.0.0.1:8000" // hub.listen's default
	// hub.proxy_socket's default, which the nginx site proxies to
	proxySocket = "/run/jupyterhub-go.sock"
)

// TestDebInstalledBehindNginx is an administrator's first day, in the test VM: install the .deb
// that `make deb` built, configure it, `systemctl enable --now` it, put Debian's nginx with the
// shipped site and a self-signed certificate in front, and let alice log in, spawn and run code
// over HTTPS; then restart, upgrade, stop, remove and purge the package under her running server.
func TestDebInstalledBehindNginx(t *testing.T) {
	if os.Getenv("JHGO_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("runs as root in the test VM: make integration")
	}
	debs, _ := filepath.Glob("testdata/jupyterhub-go_*.deb")
	if len(debs) != 1 {
		t.Fatalf("want one .deb in testdata/, got %v (test/integration.sh puts the one `make deb` built there)", debs)
	}
	deb, _ := filepath.Abs(debs[0])
	prepareGuest(t)

	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow() // later steps build on this one
		}
	}
	var alice *browser
	var aliceServerPID string

	step("apt-get installs the package without enabling or starting the hub", func(t *testing.T) {
		apt(t, "install", "-y", deb)
		if s := run(t, "dpkg-query", "-W", "-f", "${Status}", "jupyterhub-go"); s != "install ok installed" {
			t.Fatalf("dpkg status %q", s)
		}
		// The PAM service is the package's own file (prepareGuest removed setup.sh's copy).
		if owner := run(t, "dpkg", "-S", pamFile); owner != "jupyterhub-go: "+pamFile {
			t.Errorf("%s belongs to %q", pamFile, owner)
		}
		for _, f := range []string{"/usr/bin/jupyterhub-go", "/lib/systemd/system/" + hubUnit, confFile, site} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("not installed: %v", err)
			}
		}
		if fi, err := os.Stat(confFile); err == nil && fi.Mode().Perm() != 0o640 {
			t.Errorf("%s has mode %v, want 0640", confFile, fi.Mode().Perm())
		}
		if _, err := os.Lstat("/etc/nginx/sites-enabled/jupyterhub-go.conf"); err == nil {
			t.Errorf("the nginx site was enabled by the package")
		}
		if p := props(t, hubUnit, "UnitFileState", "ActiveState"); p["UnitFileState"] != "disabled" || p["ActiveState"] != "inactive" {
			t.Errorf("after install the hub is %v; it should wait for the administrator", p)
		}
		// The commented example is a valid configuration, and the PAM service is in place.
		run(t, "/usr/bin/jupyterhub-go", "--config", confFile, "check-config")
	})

	step("the administrator edits the commented configuration", func(t *testing.T) {
		// bookworm has the classic notebook and no JupyterLab; a spawn in the emulated VM is slow.
		editConfig(t, map[string]string{
			`#env = {}`:               `env = { JUPYTERHUB_SINGLEUSER_APP = "notebook.notebookapp.NotebookApp" }`,
			`#start_timeout = "120s"`: `start_timeout = "240s"`,
		})
		run(t, "/usr/bin/jupyterhub-go", "--config", confFile, "check-config")
	})

	step("systemctl enable --now: the unit is active once the hub sent READY", func(t *testing.T) {
		// Debian's own Python hub (from the jupyterhub package) would want port 8000 too.
		run(t, "systemctl", "disable", "--now", "jupyterhub.service")
		run(t, "systemctl", "enable", "--now", hubUnit)
		p := props(t, hubUnit, "Type", "ActiveState", "SubState", "UnitFileState", "WatchdogUSec", "NotifyAccess", "MainPID")
		// A Type=notify unit stays "activating" until READY=1; systemctl start returns once it came.
		if p["Type"] != "notify" || p["ActiveState"] != "active" || p["SubState"] != "running" || p["UnitFileState"] != "enabled" {
			t.Fatalf("hub unit: %v", p)
		}
		if p["WatchdogUSec"] != "30s" || p["NotifyAccess"] != "main" {
			t.Errorf("watchdog not set up: %v", p)
		}
		if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("StateDirectory %s: %v %v", dataDir, fi, err)
		}
		if out, err := exec.Command("systemd-analyze", "security", "--no-pager", hubUnit).Output(); err == nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Logf("systemd-analyze security: %s", lines[len(lines)-1])
		}
	})
	watchdog0 := props(t, hubUnit, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]

	var caPEM []byte
	step("nginx serves the shipped site over HTTPS with a self-signed certificate", func(t *testing.T) {
		// As README.md says: a certificate where the site expects it, the site enabled instead of
		// Debian's default one (which also wants port 80), nginx restarted.
		run(t, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
			"-nodes", "-days", "30", "-subj", "/CN="+siteName, "-addext", "subjectAltName=DNS:"+siteName,
			"-keyout", keyFile, "-out", certFile)
		run(t, "ln", "-sf", "../sites-available/jupyterhub-go.conf", "/etc/nginx/sites-enabled/")
		run(t, "rm", "-f", "/etc/nginx/sites-enabled/default")
		run(t, "nginx", "-t")
		run(t, "systemctl", "restart", "nginx")
		var err error
		if caPEM, err = os.ReadFile(certFile); err != nil {
			t.Fatal(err)
		}

		// Plain HTTP only redirects.
		plain := newBrowser(t, caPEM)
		plain.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, _ := plain.get(t, "http://"+siteName+"/hub/login?next=%2Fhub%2Fhome")
		if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://"+siteName+"/hub/login?next=%2Fhub%2Fhome" {
			t.Errorf("http:// answered %d, Location %q; want a 301 to https://", resp.StatusCode, resp.Header.Get("Location"))
		}

		resp, body := newBrowser(t, caPEM).get(t, "/hub/login")
		if resp.StatusCode != 200 || resp.TLS == nil || !strings.Contains(body, `name="password"`) {
			t.Fatalf("https login page: %d (TLS %v):\n%.1000s", resp.StatusCode, resp.TLS != nil, body)
		}
	})

	step("alice logs in through nginx and her cookies are Secure", func(t *testing.T) {
		alice = newBrowser(t, caPEM)
		resp, body, err := jupyterclient.Login(alice.client, alice.abs(""), "alice", "alice-pw", "/hub/home", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Request.URL.Path != "/hub/home" {
			t.Fatalf("login landed on %s (%d):\n%.1000s", resp.Request.URL, resp.StatusCode, body)
		}
		if n := alice.insecureCookies(); n != "" || len(alice.setCookies) == 0 {
			t.Errorf("cookies without Secure over HTTPS: %s (of %d)", n, len(alice.setCookies))
		}
	})

	step("the hub believes X-Forwarded-Proto over nginx's unix socket only", func(t *testing.T) {
		// nginx connects to hub.proxy_socket, which only root and nginx's group may open; user
		// code on this host can reach the TCP port from loopback, so what it claims there does
		// not count.
		fi, err := os.Stat(proxySocket)
		if err != nil {
			t.Fatalf("the hub has no proxy socket: %v", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if grp, err := user.LookupGroup("www-data"); err != nil || fmt.Sprint(st.Gid) != grp.Gid || fi.Mode().Perm() != 0o660 {
			t.Errorf("%s: mode %v gid %d, want 0660 and nginx's group www-data (%v)", proxySocket, fi.Mode().Perm(), st.Gid, err)
		}
		overSocket := func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", proxySocket)
		}
		overTCP := (&net.Dialer{}).DialContext
		for how, c := range map[string]struct {
			dial       func(context.Context, string, string) (net.Conn, error)
			wantSecure bool
		}{"the proxy socket": {overSocket, true}, "TCP from 127.0.0.1": {overTCP, false}} {
			jar, _ := cookiejar.New(nil)
			client := &http.Client{Transport: &http.Transport{DialContext: c.dial}, Jar: jar,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, _, err := jupyterclient.Login(client, "http://"+hubAddr, "alice", "alice-pw", "/hub/home",
				http.Header{"X-Forwarded-Proto": {"https"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Cookies()) == 0 {
				t.Fatalf("login over %s set no cookie (%d)", how, resp.StatusCode)
			}
			for _, ck := range resp.Cookies() {
				if ck.Secure != c.wantSecure {
					t.Errorf("login over %s: cookie %s has Secure=%v, want %v", how, ck.Name, ck.Secure, c.wantSecure)
				}
			}
		}
	})

	step("spawn progress arrives through nginx as it happens, not in one burst", func(t *testing.T) {
		_, home := alice.get(t, "/hub/home")
		m := regexp.MustCompile(`name="_xsrf" value="([^"]+)"`).FindStringSubmatch(home)
		if m == nil {
			t.Fatalf("no _xsrf on the home page:\n%s", home)
		}
		resp, body := alice.post(t, "/hub/spawn", url.Values{"_xsrf": {m[1]}})
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/hub/spawn-pending/alice") {
			t.Fatalf("spawn landed on %s (%d):\n%.1000s", resp.Request.URL, resp.StatusCode, body)
		}
		events := alice.progress(t, "/hub/api/users/alice/server/progress", 240*time.Second)
		last := events[len(events)-1]
		if last.Ready != true || last.URL != "/user/alice/" {
			t.Fatalf("spawn did not become ready: %+v", events)
		}
		span := last.At.Sub(events[0].At)
		t.Logf("%d events over %s", len(events), span.Round(time.Millisecond))
		if len(events) < 3 || span < 500*time.Millisecond {
			t.Errorf("progress came in one burst (%d events over %s): nginx buffered the stream", len(events), span)
		}
		aliceServerPID = props(t, userUnit, "MainPID")["MainPID"]
	})

	step("her server answers through nginx after the OAuth handshake", func(t *testing.T) {
		resp, body := alice.get(t, "/user/alice/tree")
		if resp.StatusCode != 200 || resp.Request.URL.Path != "/user/alice/tree" {
			t.Fatalf("/user/alice/tree ended at %s with %d:\n%.1000s", resp.Request.URL, resp.StatusCode, body)
		}
	})

	step("a kernel runs 1+1 over a WebSocket through nginx", func(t *testing.T) {
		if got := alice.runInKernel(t, "1+1"); got != "2" {
			t.Errorf("1+1 = %q", got)
		}
	})

	step("every cookie set over HTTPS carries Secure", func(t *testing.T) {
		if n := alice.insecureCookies(); n != "" {
			t.Errorf("cookies without Secure: %s", n)
		}
		t.Logf("%d Set-Cookie headers, all Secure", len(alice.setCookies))
	})

	step("systemd's watchdog is fed", func(t *testing.T) {
		deadline := time.Now().Add(40 * time.Second) // the hub pings every 15 s (WatchdogSec=30s)
		for props(t, hubUnit, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"] == watchdog0 {
			if time.Now().After(deadline) {
				t.Fatalf("no watchdog ping in 40s (WatchdogTimestamp still %s)", watchdog0)
			}
			time.Sleep(time.Second)
		}
	})

	step("systemctl restart: her server keeps running and is back through nginx within seconds", func(t *testing.T) {
		hubPID := props(t, hubUnit, "MainPID")["MainPID"]
		start := time.Now()
		run(t, "systemctl", "restart", hubUnit)
		back := alice.waitReachable(t, 30*time.Second)
		t.Logf("restart returned after %s; alice's server answered through nginx %s after the restart began",
			back.restarted.Sub(start).Round(time.Millisecond), back.at.Sub(start).Round(time.Millisecond))
		if took := back.at.Sub(start); took > 10*time.Second {
			t.Errorf("reachable again only after %s", took)
		}
		p := props(t, userUnit, "MainPID", "ActiveState")
		if p["ActiveState"] != "active" || p["MainPID"] != aliceServerPID {
			t.Errorf("her server was touched: %v (MainPID was %s)", p, aliceServerPID)
		}
		if props(t, hubUnit, "MainPID")["MainPID"] == hubPID {
			t.Errorf("the hub did not restart (MainPID %s)", hubPID)
		}
		if got := alice.runInKernel(t, "2+2"); got != "4" {
			t.Errorf("2+2 = %q after the restart", got)
		}
	})

	step("an upgrade keeps the edited configuration, restarts the hub and not her server", func(t *testing.T) {
		hubPID := props(t, hubUnit, "MainPID")["MainPID"]
		apt(t, "install", "-y", "--reinstall", deb) // dpkg's upgrade path, to the same version
		conf, _ := os.ReadFile(confFile)
		if !strings.Contains(string(conf), "\nstart_timeout = \"240s\"") {
			t.Errorf("the edited %s was replaced:\n%s", confFile, conf)
		}
		p := props(t, hubUnit, "ActiveState", "MainPID")
		if p["ActiveState"] != "active" || p["MainPID"] == hubPID {
			t.Errorf("after the upgrade the hub is %v (MainPID was %s); want it restarted", p, hubPID)
		}
		if p := props(t, userUnit, "MainPID"); p["MainPID"] != aliceServerPID {
			t.Errorf("her server was restarted by the upgrade: %v", p)
		}
		alice.waitReachable(t, 30*time.Second)
	})

	step("systemctl stop: her server keeps running", func(t *testing.T) {
		run(t, "systemctl", "stop", hubUnit)
		if p := props(t, hubUnit, "ActiveState"); p["ActiveState"] != "inactive" {
			t.Errorf("hub after stop: %v", p)
		}
		if p := props(t, userUnit, "ActiveState", "MainPID"); p["ActiveState"] != "active" || p["MainPID"] != aliceServerPID {
			t.Errorf("her server after the hub stopped: %v (MainPID was %s)", p, aliceServerPID)
		}
	})

	step("apt-get remove keeps her server, the data dir and the configuration", func(t *testing.T) {
		apt(t, "remove", "-y", "jupyterhub-go")
		if s := run(t, "dpkg-query", "-W", "-f", "${Status}", "jupyterhub-go"); s != "deinstall ok config-files" {
			t.Errorf("dpkg status after remove: %q", s)
		}
		for _, gone := range []string{"/usr/bin/jupyterhub-go", "/lib/systemd/system/" + hubUnit} {
			if _, err := os.Stat(gone); err == nil {
				t.Errorf("%s is still there after remove", gone)
			}
		}
		for _, kept := range []string{dataDir + "/jupyterhub-go.sqlite", confFile, pamFile} {
			if _, err := os.Stat(kept); err != nil {
				t.Errorf("remove deleted it: %v", err)
			}
		}
		if p := props(t, userUnit, "ActiveState", "MainPID"); p["ActiveState"] != "active" || p["MainPID"] != aliceServerPID {
			t.Errorf("her server after remove: %v (MainPID was %s)", p, aliceServerPID)
		}
	})

	step("apt-get purge deletes the data dir and the configuration", func(t *testing.T) {
		apt(t, "purge", "-y", "jupyterhub-go")
		for _, gone := range []string{dataDir, confFile, pamFile} {
			if _, err := os.Stat(gone); err == nil {
				t.Errorf("%s is still there after purge", gone)
			}
		}
		if s, _ := exec.Command("dpkg-query", "-W", "-f", "${Status}", "jupyterhub-go").Output(); strings.Contains(string(s), "installed") || strings.Contains(string(s), "config-files") {
			t.Errorf("dpkg status after purge: %q", s)
		}
	})

	step("removing the package stops a hub that still runs", func(t *testing.T) {
		apt(t, "install", "-y", deb)
		run(t, "systemctl", "start", hubUnit)
		apt(t, "remove", "-y", "jupyterhub-go")
		if p := props(t, hubUnit, "ActiveState", "LoadState"); p["ActiveState"] != "inactive" {
			t.Errorf("the hub outlived its package: %v", p)
		}
	})
}

// prepareGuest makes the guest a fresh host for the package, and puts it back afterwards for the
// tests that run after this one (they use setup.sh's PAM file, port 8000 and no nginx).
func prepareGuest(t *testing.T) {
	t.Helper()
	// setup.sh installed a PAM file of the same name: remove it, so the test sees the package's.
	savedPAM, err := os.ReadFile(pamFile)
	if err != nil {
		t.Fatalf("setup.sh's %s: %v", pamFile, err)
	}
	if err := os.Remove(pamFile); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range [][]string{
				{"journalctl", "-u", hubUnit, "-u", userUnit, "-u", "nginx", "--no-pager", "-n", "80"},
				{"tail", "-n", "20", "/var/log/nginx/error.log"},
			} {
				out, _ := exec.Command(c[0], c[1:]...).CombinedOutput()
				t.Logf("%s:\n%s", strings.Join(c, " "), out)
			}
		}
		quiet := func(args ...string) { exec.Command(args[0], args[1:]...).Run() }
		quiet("apt-get", "purge", "-y", "jupyterhub-go")
		quiet("systemctl", "stop", userUnit)
		quiet("systemctl", "stop", "nginx")
		quiet("rm", "-f", "/etc/nginx/sites-enabled/jupyterhub-go.conf", certFile, keyFile)
		quiet("ln", "-sf", "/etc/nginx/sites-available/default", "/etc/nginx/sites-enabled/default")
		quiet("rm", "-rf", dataDir)
		if err := os.WriteFile(pamFile, savedPAM, 0o644); err != nil {
			t.Errorf("restore %s: %v", pamFile, err)
		}
	})
}

// run runs a command, fails the test if it fails, and returns its trimmed stdout.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// apt runs apt-get as an administrator would, without questions. The guest has no network:
// everything the package depends on is in the image already.
func apt(t *testing.T, args ...string) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("apt-get %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// props reads unit properties with systemctl show.
func props(t *testing.T, unit string, names ...string) map[string]string {
	t.Helper()
	args := []string{"show", unit}
	for _, n := range names {
		args = append(args, "-p", n)
	}
	p := map[string]string{}
	for _, line := range strings.Split(run(t, "systemctl", args...), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			p[k] = v
		}
	}
	return p
}

// editConfig replaces whole lines of the installed configuration, failing if one is missing.
func editConfig(t *testing.T, lines map[string]string) {
	t.Helper()
	b, err := os.ReadFile(confFile)
	if err != nil {
		t.Fatal(err)
	}
	conf := "\n" + string(b)
	for old, new := range lines {
		if !strings.Contains(conf, "\n"+old+"\n") {
			t.Fatalf("no line %q in the shipped %s", old, confFile)
		}
		conf = strings.Replace(conf, "\n"+old+"\n", "\n"+new+"\n", 1)
	}
	if err := os.WriteFile(confFile, []byte(conf[1:]), 0o640); err != nil {
		t.Fatal(err)
	}
}

// browser is a person with a cookie jar who reaches https://jupyter.example.org, which resolves
// to this machine's nginx, trusting only the test's certificate.
type browser struct {
	client *http.Client
	dialer *websocket.Dialer

	mu         sync.Mutex
	setCookies []string // every Set-Cookie header the browser received, with the URL it came from
}

func newBrowser(t *testing.T, caPEM []byte) *browser {
	t.Helper()
	roots := x509.NewCertPool()
	if caPEM != nil && !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("bad certificate PEM")
	}
	nd := &net.Dialer{Timeout: 10 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return nd.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	tlsConf := &tls.Config{RootCAs: roots}
	b := &browser{dialer: &websocket.Dialer{NetDialContext: dial, TLSClientConfig: tlsConf, HandshakeTimeout: 30 * time.Second}}
	jar, _ := cookiejar.New(nil)
	b.client = &http.Client{Jar: jar, Timeout: 60 * time.Second,
		Transport: recorder{b, &http.Transport{DialContext: dial, TLSClientConfig: tlsConf}}}
	return b
}

type recorder struct {
	b    *browser
	next http.RoundTripper
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil && req.URL.Scheme == "https" {
		r.b.mu.Lock()
		for _, c := range resp.Header.Values("Set-Cookie") {
			r.b.setCookies = append(r.b.setCookies, req.URL.Path+": "+c)
		}
		r.b.mu.Unlock()
	}
	return resp, err
}

// insecureCookies lists the Set-Cookie headers received over HTTPS that lack Secure.
func (b *browser) insecureCookies() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var bad []string
	for _, raw := range b.setCookies {
		_, header, _ := strings.Cut(raw, ": ")
		if c, err := http.ParseSetCookie(header); err != nil || !c.Secure {
			bad = append(bad, raw)
		}
	}
	return strings.Join(bad, "\n")
}

func (b *browser) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return "https://" + siteName + path
}

func (b *browser) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := b.client.Get(b.abs(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(t *testing.T, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := b.client.PostForm(b.abs(path), form)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// progress reads the spawn progress stream, noting when each event arrived, until ready or failed.
func (b *browser) progress(t *testing.T, path string, timeout time.Duration) []jupyterclient.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	events, err := jupyterclient.Progress(ctx, b.client, b.abs(path))
	for _, ev := range events {
		t.Logf("+%s %s", ev.At.Sub(events[0].At).Round(time.Millisecond), ev.Message)
	}
	if err != nil {
		t.Fatal(err)
	}
	return events
}

type reachable struct{ restarted, at time.Time }

// waitReachable polls alice's server through nginx until it answers 200 again.
func (b *browser) waitReachable(t *testing.T, limit time.Duration) reachable {
	t.Helper()
	r := reachable{restarted: time.Now()}
	deadline := r.restarted.Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := b.client.Get(b.abs("/user/alice/api/status"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				r.at = time.Now()
				return r
			}
			last = strconv.Itoa(resp.StatusCode)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("alice's server not reachable through nginx within %s (last: %s)", limit, last)
	return r
}

// runInKernel runs code in a new kernel of alice's server over its WebSocket (wss:// through nginx).
func (b *browser) runInKernel(t *testing.T, code string) string {
	t.Helper()
	out, err := jupyterclient.RunCode(b.client, b.dialer, b.abs("/user/alice/"), code)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
