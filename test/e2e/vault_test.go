package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// vaultAddr is where the guest's Vault dev server listens.
const vaultAddr = "127.0.0.1:8210"

// startVault runs the Vault binary test/integration.sh ships as testdata (a dev server, root
// token "root") and returns a root client.
func startVault(t *testing.T) *api.Client {
	t.Helper()
	bin, err := filepath.Abs("testdata/vault")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no Vault binary in testdata (test/integration.sh ships the one test/vault/build.sh cached)")
	}
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address="+vaultAddr, "-dev-no-store-token")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + vaultAddr
	root, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken("root")
	for deadline := time.Now().Add(90 * time.Second); ; {
		if m, err := root.Sys().ListMounts(); err == nil && m["secret/"] != nil {
			return root
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault server -dev did not come up:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// vaultCode runs in alice's kernel: it writes and reads her secret and tries bob's, with the
// token and address her server was given, and prints the answers' status codes.
const vaultCode = `
import json, os, urllib.request, urllib.error
addr, tok = os.environ["VAULT_ADDR"], os.environ["NOTEBOOK_VAULT_TOKEN"]
def call(method, path, body=None):
    req = urllib.request.Request(addr + "/v1/" + path, method=method, headers={"X-Vault-Token": tok},
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None
put = call("POST", "secret/data/jupyter/users/alice/x", {"data": {"k": "from-the-kernel"}})[0]
got, body = call("GET", "secret/data/jupyter/users/alice/x")
bob_put = call("POST", "secret/data/jupyter/users/bob/x", {"data": {"k": "no"}})[0]
bob_get = call("GET", "secret/data/jupyter/users/bob/x")[0]
f"{put} {got} {body['data']['data']['k'] if body else None} {bob_put} {bob_get} {tok}"
`

// TestVaultTokenInNotebook: alice's real server gets a Vault token of its own in its
// environment file; her kernel reaches her secrets with it and is refused bob's; the token is in
// neither the unit's properties nor the hub's log; stopping the server revokes it.
func TestVaultTokenInNotebook(t *testing.T) {
	onlyOn(t, "trixie")
	root := startVault(t)
	policy, err := os.ReadFile("testdata/admin-policy.hcl")
	if err != nil {
		t.Fatalf("contrib/vault/admin-policy.hcl, shipped as testdata: %v", err)
	}
	if err := root.Sys().PutPolicy("jupyterhub-admin", string(policy)); err != nil {
		t.Fatal(err)
	}
	admin, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"jupyterhub-admin"}, NoDefaultPolicy: true, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	const addr, prefix = "127.0.0.1:8006", "jhgo-vault"
	base := "http://" + addr
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(admin.Auth.ClientToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q

[spawner]
unit_prefix = %q
start_timeout = "240s"

[vault]
enabled = true
address = "http://%s"
admin_token_file = %q
ttl = "1h"
max_ttl = "2h"
`, addr, dir+"/data", prefix, vaultAddr, tokenFile))
	h := startHub(t, cfg, addr)
	hubAdmin := adminToken(t, h)

	alice := newBrowser(t, base)
	if resp, _ := alice.login("alice", "alice-pw"); resp.StatusCode != 200 {
		t.Fatalf("alice cannot log in: %d", resp.StatusCode)
	}
	msgs := alice.spawnReady(t, "alice", 240*time.Second)
	if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "Vault token ready (policy jupyter-user-alice") }) {
		t.Errorf("no progress event says the token is ready: %q", msgs)
	}
	if resp, _ := alice.get(ui("alice")); resp.StatusCode != 200 {
		t.Fatalf("%s: %d", ui("alice"), resp.StatusCode)
	}

	out := strings.Trim(runInKernel(t, alice, "alice", vaultCode), "'\"")
	fields := strings.Fields(out)
	if len(fields) != 6 {
		t.Fatalf("the kernel printed %q", out)
	}
	token := fields[5]
	if got := strings.Join(fields[:5], " "); got != "200 200 from-the-kernel 403 403" {
		t.Errorf("alice's put, get, value, bob's put, get = %q, want 200 200 from-the-kernel 403 403", got)
	}
	p := unitProps(t, prefix+"-alice.service")
	if strings.Contains(fmt.Sprint(p["Environment"], p["ExecStart"]), token) {
		t.Errorf("the token is in the unit's properties, not only in its environment file")
	}
	if log, _ := os.ReadFile(h.logPath); bytes.Contains(log, []byte(token)) || bytes.Contains(log, []byte(admin.Auth.ClientToken)) {
		t.Error("a Vault token is in the hub's log")
	}
	if _, err := root.Auth().Token().Lookup(token); err != nil {
		t.Fatalf("alice's token is not known to Vault while her server runs: %v", err)
	}

	waitStopped(t, base, "alice", hubAdmin)
	if _, err := root.Auth().Token().Lookup(token); err == nil {
		t.Error("alice's token still works after her server stopped")
	}
}
