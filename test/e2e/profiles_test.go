package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestProfileReachesTheUnitAndTheKernel starts bob's server with a [[profile]] from the spawn
// page's form: the profile's limits are on the real unit (read back over D-Bus), its command
// runs, and its environment reaches a kernel. A profile switched off by
// JUPYTER_PROFILE_<NAME>_ENABLED in the hub's environment is not offered and the API refuses it.
// (That the choice is stored and reused is pinned down by agent/api's hubtest-level tests.)
func TestProfileReachesTheUnitAndTheKernel(t *testing.T) {
	onlyOn(t, "trixie")
	const (
		addr      = "127.0.0.1:8002"
		base      = "http://" + addr
		profMem   = 768 << 20
		profCPU   = 250 // percent; less starves jupyterhub-singleuser past the start timeout under emulation
		profTasks = 123
	)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q

[spawner]
memory_max = "1G"
cpu_quota = "150%%"
tasks_max = 300
unit_prefix = "jhgo-e2e-prof"
start_timeout = "240s"
slow_spawn_timeout = "2s"

[[profile]]
name = "minimal"
display_name = "Minimal"
enabled = true

[[profile]]
name = "datascience"
display_name = "Data science"
description = "the e2e profile"
enabled = true
default = true
cmd = ["/usr/bin/env", "JHGO_E2E_FROM_CMD=profile-cmd", "/usr/bin/jupyterhub-singleuser"]
env = { JHGO_E2E_PROFILE = "datascience-env" }
memory_max = "%d"
cpu_quota = "%d%%"
tasks_max = %d

[[profile]]
name = "tensorflow"
enabled = true
`, addr, dir+"/data", profMem, profCPU, profTasks))
	h := startHub(t, cfg, addr, "JUPYTER_PROFILE_TENSORFLOW_ENABLED=0")
	admin := adminToken(t, h)
	const unitName = "jhgo-e2e-prof-bob.service"
	t.Cleanup(func() { waitStopped(t, base, "bob", admin) })

	bob := newBrowser(t, base)
	bob.login("bob", "bob-pw")
	_, form := bob.get("/hub/spawn")
	if !strings.Contains(form, `value="datascience" checked`) || !strings.Contains(form, `value="minimal"`) || strings.Contains(form, "tensorflow") {
		t.Fatalf("the spawn form does not offer minimal and datascience (checked) without tensorflow:\n%s", form)
	}

	// Through the API, the profile the environment switched off is refused too.
	apiDo := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "token "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if status, body := apiDo("POST", "/hub/api/users/bob/server", `{"profile": "tensorflow"}`); status != 400 || !strings.Contains(string(body), "disabled") {
		t.Fatalf("starting with the disabled profile = %d %s, want 400", status, body)
	}

	resp, body := bob.post("/hub/spawn", url.Values{"_xsrf": {bob.xsrf(form)}, "profile": {"datascience"}})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/hub/spawn-pending/bob") {
		t.Fatalf("spawn landed on %s (%d):\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	events := bob.progress("/hub/api/users/bob/server/progress", 240*time.Second)
	if last := events[len(events)-1]; !last.Ready {
		t.Fatalf("spawn did not become ready: %v", events)
	}

	p := unitProps(t, unitName)
	if p["MemoryMax"] != uint64(profMem) || p["CPUQuotaPerSecUSec"] != uint64(profCPU*10000) || p["TasksMax"] != uint64(profTasks) {
		t.Errorf("unit properties: MemoryMax=%v CPUQuotaPerSecUSec=%v TasksMax=%v, want the profile's %d %d %d",
			p["MemoryMax"], p["CPUQuotaPerSecUSec"], p["TasksMax"], profMem, profCPU*10000, profTasks)
	}
	if _, model := apiDo("GET", "/hub/api/users/bob", ""); !strings.Contains(string(model), `"profile":"datascience"`) {
		t.Errorf("the user model's user_options lack the profile: %s", model)
	}

	bob.get(ui("bob")) // the OAuth handshake, so that the kernel API takes bob's cookie
	// An expression, not print(): runInKernel reads the execute_result.
	out := runInKernel(t, bob, "bob", "import os\n' '.join(str(os.environ.get(k)) for k in ('JHGO_E2E_PROFILE', 'JHGO_E2E_FROM_CMD', 'MEM_LIMIT'))")
	if want := fmt.Sprintf("'datascience-env profile-cmd %d'", profMem); out != want {
		t.Errorf("the kernel printed %q, want %q", out, want)
	}

}
