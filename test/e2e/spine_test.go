package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/test/jupyterclient"
)

// withoutUsage is a user list with the servers' live usage (state.usage) left out: it changes
// from one read to the next whatever the requests in between did.
func withoutUsage(list []byte) string {
	var users []map[string]any
	if json.Unmarshal(list, &users) != nil {
		return string(list)
	}
	for _, u := range users {
		svs, _ := u["servers"].(map[string]any)
		for _, sv := range svs {
			if st, ok := sv.(map[string]any)["state"].(map[string]any); ok {
				delete(st, "usage")
			}
		}
	}
	b, _ := json.Marshal(users)
	return string(b)
}

// TestSpine walks the whole path a person takes, in order: log in with a Unix password, start a
// server as a transient unit, reach it through the OAuth handshake and the router, run code in a
// kernel over a WebSocket; then restarts the hub under it and stops it.
func TestSpine(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
proxy_socket = "" # hubs of several tests may run at once; the package test covers the socket
log_level = "debug"
max_body_bytes = 65536

[spawner]
memory_max = "%d"
cpu_quota = "%d%%"
tasks_max = %d
start_timeout = "240s"
slow_spawn_timeout = "2s"
`, hubAddr, dir+"/data", memMax, cpuQuota, tasksMax))
	h := startHub(t, cfg, hubAddr)
	out, err := exec.Command(h.cmd.Path, "--config", cfg, "token", "create", "--user", "hubadmin", "--create", "--admin").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	admin := strings.TrimSpace(string(out))

	alice := newBrowser(t, hubURL)
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow() // later steps build on this one
		}
	}

	step("wrong password shows the login page with an error", func(t *testing.T) {
		b := newBrowser(t, hubURL)
		resp, body := b.login("alice", "not-her-password")
		if resp.StatusCode != 403 || !strings.Contains(body, "invalid username or password") || !strings.Contains(body, `name="password"`) {
			t.Errorf("got %d:\n%s", resp.StatusCode, body)
		}
		resp, body2 := b.login("no-such-user", "whatever")
		if resp.StatusCode != 403 || !strings.Contains(body2, "invalid username or password") {
			t.Errorf("unknown user got %d", resp.StatusCode)
		}
	})

	step("alice logs in with her Unix password", func(t *testing.T) {
		resp, body := alice.login("alice", "alice-pw")
		if resp.StatusCode != 200 || resp.Request.URL.Path != "/hub/home" || !strings.Contains(body, "Start my server") {
			t.Fatalf("login landed on %s (%d):\n%s", resp.Request.URL, resp.StatusCode, body)
		}
	})

	var events []jupyterclient.Event
	step("her server starts as a transient unit with progress events", func(t *testing.T) {
		_, home := alice.get("/hub/home")
		resp, body := alice.post("/hub/spawn", url.Values{"_xsrf": {alice.xsrf(home)}})
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/hub/spawn-pending/alice") {
			t.Fatalf("spawn landed on %s (%d):\n%s", resp.Request.URL, resp.StatusCode, body)
		}
		events = alice.progress("/hub/api/users/alice/server/progress", 240*time.Second)
		last := events[len(events)-1]
		if !last.Ready || last.URL != "/user/alice/" {
			t.Fatalf("spawn did not become ready: %v", events)
		}
		if events[0].Message != "Server requested" || len(events) < 4 {
			t.Errorf("expected several progress events starting with 'Server requested', got %v", events)
		}
		if span := last.At.Sub(events[0].At); span < 500*time.Millisecond {
			t.Errorf("all progress arrived in one burst (%s): %v", span, events)
		}
	})

	step("the unit has the configured limits and user", func(t *testing.T) {
		p := unitProps(t, unit)
		if p["User"] != "alice" || p["MemoryMax"] != uint64(memMax) || p["CPUQuotaPerSecUSec"] != uint64(cpuQuota*10000) || p["TasksMax"] != uint64(tasksMax) {
			t.Errorf("unit properties: User=%v MemoryMax=%v CPUQuotaPerSecUSec=%v TasksMax=%v", p["User"], p["MemoryMax"], p["CPUQuotaPerSecUSec"], p["TasksMax"])
		}
		if cg, _ := p["ControlGroup"].(string); !strings.Contains(cg, "jupyterhub-users.slice") {
			t.Errorf("server is not in its own slice (ControlGroup %q); the hub's restart would touch it", cg)
		}
	})

	step("the OAuth handshake completes and alice's notebook UI answers 200", func(t *testing.T) {
		resp, body := alice.get(ui("alice"))
		if resp.StatusCode != 200 || resp.Request.URL.Path != ui("alice") {
			t.Fatalf("%s ended at %s with %d:\n%.2000s", ui("alice"), resp.Request.URL, resp.StatusCode, body)
		}
		if alice.cookie("/user/alice/", "jupyterhub-user-alice") == "" {
			t.Errorf("the single-user server set no login cookie")
		}
	})

	step("JupyterLab's hub menu (Hub Control Panel, Log Out) points at this hub and works", func(t *testing.T) {
		if classic() {
			t.Skip("the classic notebook has no hub menu")
		}
		_, page := alice.get(ui("alice"))
		for _, want := range []string{`"hubPrefix": "/hub/"`, `"hubUser": "alice"`} {
			if !strings.Contains(page, want) {
				t.Errorf("JupyterLab's page config lacks %s", want)
			}
		}
		// File > Hub Control Panel opens <hubPrefix>home; Log Out goes to <hubPrefix>logout (that
		// one is checked last in this test, where alice's session may end).
		if resp, body := alice.get("/hub/home"); resp.StatusCode != 200 || !strings.Contains(body, "alice") {
			t.Errorf("Hub Control Panel: %d at %s", resp.StatusCode, resp.Request.URL)
		}
	})

	step("a kernel runs 1+1 over its WebSocket through the router", func(t *testing.T) {
		if got := runInKernel(t, alice, "alice", "1+1"); got != "2" {
			t.Errorf("1+1 = %q", got)
		}
	})

	step("an admin sees what alice's unit uses now, read from its cgroup", func(t *testing.T) {
		cg, _ := unitProps(t, unit)["ControlGroup"].(string)
		raw, err := os.ReadFile("/sys/fs/cgroup" + cg + "/memory.current")
		if err != nil {
			t.Fatalf("the unit's own cgroup (%q): %v", cg, err)
		}
		kernel, _ := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		code, body := apiDo(t, "GET", "/hub/api/users/alice", admin, "")
		var m struct {
			Servers map[string]struct {
				State struct {
					Usage *struct {
						MemoryBytes uint64  `json:"memory_bytes"`
						CPUSeconds  float64 `json:"cpu_seconds"`
					}
				}
			}
		}
		if err := json.Unmarshal(body, &m); err != nil || code != 200 {
			t.Fatalf("GET alice = %d %s", code, body)
		}
		u := m.Servers[""].State.Usage
		if u == nil {
			t.Fatalf("no usage for alice's running server (cgroup %s): %s", cg, body)
		}
		// A Python server with a kernel holds tens of MiB; the two readings are moments apart.
		if u.MemoryBytes < 10<<20 || u.MemoryBytes > memMax || u.CPUSeconds <= 0 || u.MemoryBytes > 2*kernel || kernel > 2*u.MemoryBytes {
			t.Errorf("usage %+v; the kernel says memory.current = %d for %s", *u, kernel, cg)
		}
		t.Logf("alice's server: %d MiB, %.1f s of CPU (cgroup %s)", u.MemoryBytes>>20, u.CPUSeconds, cg)
	})

	step("alice's kernel cannot see bob's home, and what she writes is hers alone", func(t *testing.T) {
		// Debian's default: homes 0755, files 0644. Before homes were private, alice read this.
		if err := os.Chmod("/home/bob", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("/home/bob/secret.ipynb", []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		got := runInKernel(t, alice, "alice", "import os\n(os.path.exists('/home/bob/secret.ipynb'), sorted(os.listdir('/home')))")
		if got != "(False, ['alice'])" {
			t.Errorf("alice's kernel sees (bob's notebook, /home) = %s, want (False, ['alice'])", got)
		}
		got = runInKernel(t, alice, "alice", "import os\np = os.path.expanduser('~/private.txt')\nopen(p, 'w').close()\noct(os.stat(p).st_mode & 0o777)")
		if got != "'0o600'" {
			t.Errorf("a file alice's kernel creates has mode %s, want '0o600' (spawner.umask 0077)", got)
		}
	})

	step("bob gets 403 at alice's server", func(t *testing.T) {
		bob := newBrowser(t, hubURL)
		if resp, _ := bob.login("bob", "bob-pw"); resp.StatusCode != 200 {
			t.Fatalf("bob cannot log in: %d", resp.StatusCode)
		}
		resp, body := bob.get("/user/alice/")
		if resp.StatusCode != 403 {
			t.Errorf("bob at /user/alice/ ended at %s with %d:\n%.1000s", resp.Request.URL, resp.StatusCode, body)
		}
	})

	step("given a share of alice's server, bob reaches it through the router, until it is revoked", func(t *testing.T) {
		if status, body := apiDo(t, "POST", "/hub/api/shares/alice/", admin, `{"user": "bob"}`); status != 200 {
			t.Fatalf("sharing alice's server with bob = %d %s", status, body)
		}
		bob := newBrowser(t, hubURL)
		bob.login("bob", "bob-pw")
		// The server's login sends bob to the hub, which asks him to confirm (not his server).
		resp, page := bob.get("/user/alice/")
		action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(page)
		if resp.StatusCode != 200 || action == nil {
			t.Fatalf("bob at alice's shared server ended at %s with %d:\n%.1000s", resp.Request.URL, resp.StatusCode, page)
		}
		resp, body := bob.post(html.UnescapeString(action[1]), url.Values{"_xsrf": {bob.xsrf(page)}})
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/user/alice/") {
			t.Errorf("bob after confirming ended at %s with %d:\n%.1000s", resp.Request.URL, resp.StatusCode, body)
		}
		if status, body := apiDo(t, "PATCH", "/hub/api/shares/alice/", admin, `{"user": "bob"}`); status != 200 {
			t.Fatalf("revoking = %d %s", status, body)
		}
		// A new login of bob's (the server remembers a token's answer for a few minutes).
		again := newBrowser(t, hubURL)
		again.login("bob", "bob-pw")
		if resp, body := again.get("/user/alice/"); resp.StatusCode != 403 {
			t.Errorf("bob after the share was revoked ended at %s with %d:\n%.600s", resp.Request.URL, resp.StatusCode, body)
		}
	})

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		step(fmt.Sprintf("after %s the server keeps running and is adopted again", sig), func(t *testing.T) {
			pid := unitProps(t, unit)["MainPID"]
			h.signal(sig)
			if p := unitProps(t, unit); p["ActiveState"] != "active" || p["MainPID"] != pid {
				t.Fatalf("unit after hub %s: ActiveState=%v MainPID=%v (was %v)", sig, p["ActiveState"], p["MainPID"], pid)
			}
			h.start()
			resp, _ := alice.get(ui("alice"))
			if resp.StatusCode != 200 || resp.Request.URL.Path != ui("alice") {
				t.Errorf("after restart %s ended at %s with %d", ui("alice"), resp.Request.URL, resp.StatusCode)
			}
			if p := unitProps(t, unit); p["MainPID"] != pid {
				t.Errorf("server was respawned (MainPID %v, was %v)", p["MainPID"], pid)
			}
		})
	}

	step("bad input gets 4xx JSON errors and changes nothing", func(t *testing.T) {
		_, before := apiDo(t, "GET", "/hub/api/users", admin, "")
		cases := []struct {
			method, path, token, body string
			want                      int
		}{
			{"GET", "/hub/api/users/nobody", admin, "", 404},
			{"POST", "/hub/api/users", admin, `{"usernames": [`, 400},
			{"POST", "/hub/api/users", admin, `{"usernames": ["` + strings.Repeat("x", 70000) + `"]}`, 413},
			{"GET", "/hub/api/users/..%2F..%2Fetc%2Fpasswd", admin, "", 400},
			{"GET", "/hub/api/users", "", "", 403},
			{"DELETE", "/hub/api/users/alice/server", "", "", 403},
		}
		for _, c := range cases {
			status, body := apiDo(t, c.method, c.path, c.token, c.body)
			var e struct{ Status int }
			if status != c.want || json.Unmarshal(body, &e) != nil || e.Status != c.want {
				t.Errorf("%s %.60s = %d %.200s, want a %d JSON error", c.method, c.path, status, body, c.want)
			}
		}
		req, _ := http.NewRequest("GET", hubURL+"/hub/api/users", nil)
		req.Header.Set("X-Token", admin) // the token in the wrong header
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
			t.Errorf("token in the wrong header was not refused: %v", resp)
		}
		if _, after := apiDo(t, "GET", "/hub/api/users", admin, ""); withoutUsage(after) != withoutUsage(before) {
			t.Errorf("bad requests changed the users:\nbefore %s\nafter  %s", before, after)
		}
		if p := unitProps(t, unit); p["ActiveState"] != "active" {
			t.Errorf("alice's server is %v after bad input", p["ActiveState"])
		}
	})

	step("stopping the server removes the unit and the API shows it stopped", func(t *testing.T) {
		status, body := apiDo(t, "DELETE", "/hub/api/users/alice/server", admin, "")
		if status != 204 && status != 202 {
			t.Fatalf("stop = %d %s", status, body)
		}
		deadline := time.Now().Add(60 * time.Second)
		type userModel struct {
			Server  *string
			Pending *string
			Servers map[string]any
		}
		var user userModel
		for time.Now().Before(deadline) {
			_, body = apiDo(t, "GET", "/hub/api/users/alice", admin, "")
			// Afresh each poll: Unmarshal adds to a map it is given, so a server seen while
			// stopping would otherwise stay in Servers after it stopped.
			user = userModel{}
			json.Unmarshal(body, &user)
			if user.Pending == nil && user.Server == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if user.Server != nil || user.Pending != nil || len(user.Servers) != 0 {
			t.Errorf("API still shows a server: %s", body)
		}
		if p := unitProps(t, unit); p["LoadState"] != "not-found" && p["ActiveState"] != "inactive" {
			t.Errorf("unit still there: LoadState=%v ActiveState=%v", p["LoadState"], p["ActiveState"])
		}
		resp, _ := alice.get(ui("alice"))
		if resp.StatusCode != 424 {
			t.Errorf("a stopped server's URL answered %d, want 424 (start your server)", resp.StatusCode)
		}
	})

	step("Log Out (the hub menu's, /hub/logout) ends alice's hub session", func(t *testing.T) {
		alice.get("/hub/logout")
		if resp, _ := alice.get("/hub/home"); resp.Request.URL.Path != "/hub/login" {
			t.Errorf("after logout /hub/home ended at %s, want the login page", resp.Request.URL)
		}
	})
}

// TestSpawnFailureShowsTheJournal starts a second hub whose server command fails at once: the
// progress stream's failed event must say why, with the unit's own last log lines.
func TestSpawnFailureShowsTheJournal(t *testing.T) {
	dir := t.TempDir()
	const addr = "127.0.0.1:8001"
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
proxy_socket = "" # hubs of several tests may run at once; the package test covers the socket
[spawner]
cmd = ["/bin/sh", "-c", "echo e2e-boom-marker >&2; exit 3"]
unit_prefix = "jhgo-e2e-fail"
start_timeout = "60s"
`, addr, dir+"/data"))
	startHub(t, cfg, addr)
	bob := newBrowser(t, "http://"+addr)
	if resp, _ := bob.login("bob", "bob-pw"); resp.StatusCode != 200 {
		t.Fatalf("bob cannot log in: %d", resp.StatusCode)
	}
	events := bob.spawn(t, "bob", 90*time.Second)
	last := events[len(events)-1]
	if !last.Failed || !strings.Contains(last.Message, "e2e-boom-marker") {
		t.Errorf("failed event lacks the unit's log: %v", last)
	}
	resp, body := bob.get("/hub/home")
	if resp.StatusCode != 200 || !strings.Contains(body, "e2e-boom-marker") || !strings.Contains(body, "Start my server") {
		t.Errorf("home page after a failed spawn does not explain it:\n%s", body)
	}
}
