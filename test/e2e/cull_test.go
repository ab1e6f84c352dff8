package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/test/jupyterclient"
)

// TestCullerStopsTheIdleServerKeepsTheBusyOneUntilMaxAge runs the built-in culler against real
// single-user servers: alice's server, with nobody using it, is stopped after cull.timeout; bob's,
// whose kernel sleeps in a cell (no traffic, no output), is not, until cull.max_age stops it.
//
// The servers are set up under a hub with the culler off; the hub then restarts with a timeout of
// a few seconds (the servers stay up, and their idle time counts from the restart), so that slow
// spawns and kernel starts in the emulated VM do not race the timeout.
func TestCullerStopsTheIdleServerKeepsTheBusyOneUntilMaxAge(t *testing.T) {
	onlyOn(t, "trixie")
	dir := t.TempDir()
	const addr = "127.0.0.1:8017"
	config := func(cull string) string {
		return writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
[spawner]
unit_prefix = "jhgo-e2e-cull"
start_timeout = "400s"
[cull]
%s
`, addr, dir+"/data", cull))
	}
	h := startHub(t, config("enabled = false"), addr)
	base := "http://" + addr
	alice, bob := newBrowser(t, base), newBrowser(t, base)
	alice.login("alice", "alice-pw")
	bob.login("bob", "bob-pw")
	// One after the other: two JupyterLab servers starting at once in the emulated VM take
	// minutes longer than one does twice.
	for name, b := range map[string]*browser{"alice": alice, "bob": bob} {
		b.spawnReady(t, name, 400*time.Second)
	}
	if resp, body := bob.get(ui("bob")); resp.StatusCode != 200 {
		t.Fatalf("bob's UI: %d %.500s", resp.StatusCode, body)
	}
	// bob's cell sleeps for longer than the test; RunCode returns when his server is stopped.
	ran := make(chan error, 1)
	go func() {
		_, err := jupyterclient.RunCode(bob.client, nil, base+"/user/bob/", "import time; time.sleep(600)")
		ran <- err
	}()
	waitFor(t, 120*time.Second, "bob's kernel is busy", func() bool { return kernelState(t, bob, "bob") == "busy" })

	h.signal(syscall.SIGTERM)
	h.cfgPath = config("timeout = \"5s\"\nevery = \"1s\"")
	h.start()
	waitFor(t, 20*time.Second, "the culler stops alice's idle server", func() bool { return serverStopped(t, alice, "alice") })
	time.Sleep(6 * time.Second) // more than cull.timeout without traffic for bob
	if serverStopped(t, bob, "bob") {
		t.Fatalf("bob's server, whose kernel is busy, was culled; hub log:\n%s", hubLog(h))
	}
	if log := hubLog(h); !strings.Contains(log, "culler: stopping server") || !strings.Contains(log, "user=alice") || !strings.Contains(log, "idle for") {
		t.Errorf("the hub's log does not say why alice's server was culled:\n%s", log)
	}

	h.signal(syscall.SIGTERM)
	h.cfgPath = config("timeout = \"1h\"\nevery = \"1s\"\nmax_age = \"3s\"")
	h.start()
	waitFor(t, 20*time.Second, "cull.max_age stops bob's busy server", func() bool { return serverStopped(t, bob, "bob") })
	if log := hubLog(h); !strings.Contains(log, "cull.max_age") {
		t.Errorf("the hub's log does not name cull.max_age:\n%s", log)
	}
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Error("bob's cell still runs after his server was stopped")
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", limit, what)
		}
		time.Sleep(time.Second)
	}
}

// kernelState is the execution_state of user's first kernel, read as a tab polls it.
func kernelState(t *testing.T, b *browser, user string) string {
	resp, body := b.get("/user/" + user + "/api/kernels")
	var ks []struct {
		State string `json:"execution_state"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &ks) != nil || len(ks) == 0 {
		return ""
	}
	return ks[0].State
}

// serverStopped asks the hub, as its user, whether the default server is gone.
func serverStopped(t *testing.T, b *browser, user string) bool {
	resp, body := b.get("/hub/api/users/" + user)
	var u struct {
		Servers map[string]any `json:"servers"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &u) != nil {
		t.Fatalf("GET /hub/api/users/%s = %d %s", user, resp.StatusCode, body)
	}
	return u.Servers[""] == nil
}

func hubLog(h *hub) string {
	b, _ := os.ReadFile(h.logPath)
	return string(b)
}
