package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/test/jupyterclient"
)

// TestNamedServersRunSideBySideAndSurviveAHubKill starts two named servers of alice's with the
// stock jupyterhub-singleuser, each its own unit and route, reaches both through their own OAuth
// clients, then SIGKILLs the hub and checks that the new one adopts both.
func TestNamedServersRunSideBySideAndSurviveAHubKill(t *testing.T) {
	onlyOn(t, "trixie")
	dir := t.TempDir()
	const addr = "127.0.0.1:8004"
	base := "http://" + addr
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
log_level = "debug"
allow_named_servers = true
named_server_limit_per_user = 2

[spawner]
unit_prefix = "jhgo-e2e-named"
start_timeout = "480s"
slow_spawn_timeout = "2s"
`, addr, dir+"/data"))
	h := startHub(t, cfg, addr)
	out, err := hubCmd(h, cfg, "token", "create", "--user", "hubadmin", "--create", "--admin")
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	admin := strings.TrimSpace(out)
	api := func(method, path, body string) (int, []byte) {
		t.Helper()
		return apiAt(t, base, method, path, admin, body)
	}
	type server struct {
		Ready, Stopped bool
		Pending        *string
		URL            string
		State          struct{ Unit string }
	}
	servers := func() map[string]server {
		t.Helper()
		status, body := api("GET", "/hub/api/users/alice?include_stopped_servers", "")
		var m struct{ Servers map[string]server }
		if status != 200 || json.Unmarshal(body, &m) != nil {
			t.Fatalf("alice's model = %d %s", status, body)
		}
		return m.Servers
	}
	names := []string{"one", "two"}
	// Stop both before the hub goes (t.Cleanup runs last-first): units outlive the hub.
	t.Cleanup(func() {
		for _, n := range names {
			api("DELETE", "/hub/api/users/alice/servers/"+n, `{"remove": true}`)
		}
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			status, body := api("GET", "/hub/api/users/alice", "")
			var m struct{ Servers map[string]any }
			if status != 200 || json.Unmarshal(body, &m) != nil || len(m.Servers) == 0 {
				return
			}
		}
	})
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}
	alice := newBrowser(t, base)
	uiOf := func(server string) string {
		return strings.Replace(ui("alice"), "/user/alice/", "/user/alice/"+server+"/", 1)
	}
	pids := map[string]any{}

	step("alice logs in", func(t *testing.T) {
		if resp, _ := alice.login("alice", "alice-pw"); resp.StatusCode != 200 {
			t.Fatalf("alice cannot log in: %d", resp.StatusCode)
		}
	})

	step("two named servers start side by side, each its own unit", func(t *testing.T) {
		// One after the other: two JupyterLabs starting at once under software emulation take
		// longer than any sensible start timeout (each burns ~2 min of CPU on its way up).
		var s map[string]server
		for _, n := range names {
			if status, body := api("POST", "/hub/api/users/alice/servers/"+n, ""); status != 201 && status != 202 {
				t.Fatalf("start %s = %d %s", n, status, body)
			}
			for deadline := time.Now().Add(480 * time.Second); ; time.Sleep(3 * time.Second) {
				s = servers()
				if s[n].Ready {
					break
				}
				if time.Now().After(deadline) || s[n].Stopped && s[n].Pending == nil {
					t.Fatalf("server %s did not become ready: %+v", n, s)
				}
			}
		}
		if !s["one"].Ready {
			t.Fatalf("one stopped while two started: %+v", s)
		}
		if status, body := api("POST", "/hub/api/users/alice/servers/three", ""); status != 400 || !strings.Contains(string(body), "maximum of 2") {
			t.Errorf("a third over named_server_limit_per_user = 2: %d %s", status, body)
		}
		if s["one"].URL != "/user/alice/one/" || s["two"].URL != "/user/alice/two/" {
			t.Errorf("server URLs: %+v", s)
		}
		if s["one"].State.Unit == s["two"].State.Unit {
			t.Fatalf("both servers run as unit %s", s["one"].State.Unit)
		}
		for _, n := range names {
			p := unitProps(t, s[n].State.Unit)
			if p["ActiveState"] != "active" || p["User"] != "alice" {
				t.Errorf("unit %s: ActiveState=%v User=%v", s[n].State.Unit, p["ActiveState"], p["User"])
			}
			pids[n] = p["MainPID"]
		}
		if pids["one"] == pids["two"] {
			t.Errorf("both units have MainPID %v", pids["one"])
		}
	})

	reach := func(t *testing.T) {
		t.Helper()
		for _, n := range names {
			resp, body := alice.get(uiOf(n))
			if resp.StatusCode != 200 || resp.Request.URL.Path != uiOf(n) {
				t.Errorf("%s ended at %s with %d:\n%.1000s", uiOf(n), resp.Request.URL, resp.StatusCode, body)
			}
			resp, body = alice.get("/user/alice/" + n + "/api")
			if resp.StatusCode != 200 || !strings.Contains(body, `"version"`) {
				t.Errorf("/user/alice/%s/api = %d %.300s", n, resp.StatusCode, body)
			}
			if alice.cookie("/user/alice/"+n+"/", "jupyterhub-user-alice-"+n) == "" && alice.cookie("/user/alice/"+n+"/", "jupyterhub-user-alice") == "" {
				t.Errorf("server %s set no login cookie of its own", n)
			}
		}
	}

	step("alice reaches both through their own OAuth clients and routes", func(t *testing.T) {
		reach(t)
		_, home := alice.get("/hub/home")
		for _, n := range names {
			if !strings.Contains(home, `data-server-name="`+n+`"`) || !strings.Contains(home, `id="stop-`+n+`"`) {
				t.Errorf("the home page does not list %s as running", n)
			}
		}
	})

	step("after a hub SIGKILL both keep running and are adopted again", func(t *testing.T) {
		s := servers()
		h.signal(syscall.SIGKILL)
		for _, n := range names {
			if p := unitProps(t, s[n].State.Unit); p["ActiveState"] != "active" || p["MainPID"] != pids[n] {
				t.Fatalf("unit %s after the kill: ActiveState=%v MainPID=%v (was %v)", s[n].State.Unit, p["ActiveState"], p["MainPID"], pids[n])
			}
		}
		h.start()
		reach(t)
		out, err := jupyterclient.RunCode(alice.client, nil, base+"/user/alice/two/", "import os\nos.environ['JUPYTERHUB_SERVER_NAME']")
		if err != nil || out != "'two'" {
			t.Errorf("a kernel of server two after the restart: %q, %v", out, err)
		}
		for _, n := range names {
			if p := unitProps(t, s[n].State.Unit); p["MainPID"] != pids[n] {
				t.Errorf("server %s was respawned (MainPID %v, was %v)", n, p["MainPID"], pids[n])
			}
		}
	})

	step("removing one stops its unit and leaves the other running", func(t *testing.T) {
		s := servers()
		if status, body := api("DELETE", "/hub/api/users/alice/servers/one", `{"remove": true}`); status != 204 && status != 202 {
			t.Fatalf("remove one = %d %s", status, body)
		}
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			if _, ok := servers()["one"]; !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("one was not removed: %+v", servers())
			}
		}
		if p := unitProps(t, s["one"].State.Unit); p["ActiveState"] == "active" {
			t.Errorf("unit of the removed server is still active")
		}
		if p := unitProps(t, s["two"].State.Unit); p["ActiveState"] != "active" || p["MainPID"] != pids["two"] {
			t.Errorf("two after one's removal: ActiveState=%v MainPID=%v", p["ActiveState"], p["MainPID"])
		}
	})
}

// hubCmd runs the hub's binary with the hub's config, as an operator would.
func hubCmd(h *hub, cfg string, args ...string) (string, error) {
	out, err := exec.Command(h.cmd.Path, append([]string{"--config", cfg}, args...)...).Output()
	return string(out), err
}
