package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	_ "modernc.org/sqlite" // the hub's own database, read to find credentials left behind
)

// TestHubKilledBetweenAnySpawnStepsLeavesNothingBehind SIGKILLs the hub right after each half of
// each spawn step has succeeded (JHGO_CRASH_AFTER, read by agent/wire.go), with NFS homes and
// Vault tokens on, then starts a hub again and checks it repaired everything: the server ends up
// stopped (a spawn cut short is not resumed) with no unit, mount, check unit, environment file,
// server token, OAuth client or Vault token left, and alice can start and stop her server as if
// nothing had happened. (The gpu step's case is TestHubKilledAfterTheGPUStepLeavesNoGrant in
// agent: the VM has no GPU.)
func TestHubKilledBetweenAnySpawnStepsLeavesNothingBehind(t *testing.T) {
	onlyOn(t, "bookworm")
	startNFSServer(t)
	const addr, prefix = "127.0.0.1:8005", "jhgo-crash"
	base := "http://" + addr
	dir := t.TempDir()
	dataDir := dir + "/data"
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
proxy_socket = ""
log_level = "debug"

[spawner]
unit_prefix = %q
start_timeout = "240s"

[nfs]
enabled = true
server = "127.0.0.1"
export = %q
mount_timeout = "%s"
unmount_after = "1s"
`, addr, dataDir, prefix, nfsExport, nfsMountTimeout))
	// With the Vault binary shipped as testdata, the vault step is in the pipeline too, and no
	// token the hub minted may outlive a crash: Vault's accessor list is back to what it was.
	var vaultTokens func(t *testing.T) int
	steps := []string{"credentials", "nfs", "unit"}
	if _, err := os.Stat("testdata/vault"); err == nil {
		root := startVault(t)
		policy, err := os.ReadFile("testdata/admin-policy.hcl")
		if err != nil {
			t.Fatal(err)
		}
		if err := root.Sys().PutPolicy("jupyterhub-admin", string(policy)); err != nil {
			t.Fatal(err)
		}
		tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"jupyterhub-admin"}, NoDefaultPolicy: true, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		tokenFile := filepath.Join(dir, "vault-token")
		if err := os.WriteFile(tokenFile, []byte(tok.Auth.ClientToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, _ := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintf(f, "\n[vault]\nenabled = true\naddress = \"http://%s\"\nadmin_token_file = %q\n", vaultAddr, tokenFile)
		f.Close()
		vaultTokens = func(t *testing.T) int {
			t.Helper()
			s, err := root.Logical().List("auth/token/accessors")
			if err != nil || s == nil {
				t.Fatalf("list Vault's token accessors: %v", err)
			}
			keys, _ := s.Data["keys"].([]any)
			return len(keys)
		}
		steps = []string{"credentials", "nfs", "vault", "unit"}
	} else {
		t.Log("no Vault binary in testdata: the vault step is not crash-tested here")
	}
	h := startHub(t, cfg, addr)
	admin := adminToken(t, h)
	vaultBefore := 0
	if vaultTokens != nil {
		vaultBefore = vaultTokens(t)
	}
	serverUnit := prefix + "-alice.service"
	req, _ := http.NewRequest("POST", base+"/hub/api/users/alice", nil)
	req.Header.Set("Authorization", "token "+admin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create alice: %v %v", resp, err)
	}

	spawn := func(t *testing.T) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/hub/api/users/alice/server", nil)
		req.Header.Set("Authorization", "token "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The hub may kill itself before it answers: that is the point.
			t.Logf("spawn request: %v", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /hub/api/users/alice/server = %d", resp.StatusCode)
		}
	}
	// crashes restarts the hub with JHGO_CRASH_AFTER=at and waits until it has killed itself.
	crashes := func(t *testing.T, at string, trigger func(*testing.T)) {
		t.Helper()
		h.signal(syscall.SIGTERM)
		h.env = []string{"JHGO_CRASH_AFTER=" + at}
		h.start()
		cmd := h.cmd
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		trigger(t)
		select {
		case err := <-exited:
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("the hub ended with %v, not by SIGKILL at %s", err, at)
			}
		case <-time.After(4 * time.Minute):
			t.Fatalf("the hub did not reach %s in 4 minutes", at)
		}
		h.cmd = nil
		h.env = nil
		h.start()
	}
	// settled waits until alice's server is neither starting nor stopping and says whether it runs.
	settled := func(t *testing.T) bool {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			req, _ := http.NewRequest("GET", base+"/hub/api/users/alice", nil)
			req.Header.Set("Authorization", "token "+admin)
			var u struct {
				Server  *string
				Pending *string
			}
			if resp, err := http.DefaultClient.Do(req); err == nil {
				err = json.NewDecoder(resp.Body).Decode(&u)
				resp.Body.Close()
				if err == nil && u.Pending == nil {
					return u.Server != nil
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Fatal("alice's server stayed pending for 2 minutes after the restart")
		return false
	}
	nothingLeft := func(t *testing.T) {
		t.Helper()
		// The home goes nfs.unmount_after (1 s) after the server stopped.
		deadline := time.Now().Add(nfsPoll + 30*time.Second)
		for time.Now().Before(deadline) {
			if _, _, ok := mountOn(t, "/home/alice"); !ok {
				break
			}
			time.Sleep(time.Second)
		}
		nothingLeftBehind(t, prefix, "alice")
		if envs, _ := filepath.Glob("/run/jupyterhub-go/env/*" + prefix + "-alice*"); len(envs) > 0 {
			t.Errorf("environment files left behind (they hold the server's token): %v", envs)
		}
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "jupyterhub-go.sqlite")+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var tokens, clients int
		if err := db.QueryRow(`SELECT count(*) FROM tokens WHERE kind = 'server'`).Scan(&tokens); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT count(*) FROM oauth_clients WHERE server_id IS NOT NULL`).Scan(&clients); err != nil {
			t.Fatal(err)
		}
		if tokens != 0 || clients != 0 {
			t.Errorf("%d server tokens and %d OAuth clients of servers left behind", tokens, clients)
		}
		if vaultTokens != nil {
			if n := vaultTokens(t); n != vaultBefore {
				t.Errorf("Vault holds %d tokens, %d before alice's servers: a token outlived its server", n, vaultBefore)
			}
		}
	}
	startsAndStopsAgain := func(t *testing.T) {
		t.Helper()
		spawn(t)
		if !settled(t) {
			t.Fatal("alice's server does not start after the hub repaired the crash")
		}
		if load, active := unitLoadState(t, serverUnit); active != "active" {
			t.Fatalf("%s: %s/%s", serverUnit, load, active)
		}
		waitStopped(t, base, "alice", admin)
		nothingLeft(t)
	}

	for _, step := range append(steps, "ready") {
		at := step + ":start"
		t.Run("killed after "+at, func(t *testing.T) {
			crashes(t, at, spawn)
			if settled(t) {
				t.Errorf("the spawn cut short at %s was resumed; it should be stopped and left to the user to start again", at)
				waitStopped(t, base, "alice", admin)
			}
			nothingLeft(t)
			startsAndStopsAgain(t)
		})
	}
	// The stop halves run in reverse: unit first, credentials last.
	for _, step := range slices.Backward(steps) {
		at := step + ":stop"
		t.Run("killed after "+at, func(t *testing.T) {
			spawn(t)
			if !settled(t) {
				t.Fatal("alice's server did not start")
			}
			crashes(t, at, func(t *testing.T) { apiDoAt(t, base, "DELETE", "/hub/api/users/alice/server", admin) })
			if settled(t) {
				t.Errorf("the stop cut short at %s left the server running", at)
				waitStopped(t, base, "alice", admin)
			}
			nothingLeft(t)
			startsAndStopsAgain(t)
		})
	}
	if t.Failed() {
		b, _ := os.ReadFile(h.logPath)
		if i := strings.LastIndex(string(b), "JHGO_CRASH_AFTER"); i > 0 {
			t.Logf("hub log around the last crash:\n%s", string(b)[max(0, i-3000):min(len(b), i+3000)])
		}
	}
}
