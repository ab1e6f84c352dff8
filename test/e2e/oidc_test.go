package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/test/oidcpeer"
)

// TestOIDCLoginReachesServer logs alice in through the Keycloak-shaped provider, starts her
// server and uses it; after she logs out, the provider's session is gone and the server no
// longer lets her browser in.
func TestOIDCLoginReachesServer(t *testing.T) {
	// test/integration.sh ships node and the provider as this test's testdata.
	if abs, err := filepath.Abs("testdata/node"); err == nil {
		if _, err := os.Stat(abs); err == nil {
			os.Setenv("JHGO_NODE", abs)
			os.Setenv("JHGO_OIDC_PROVIDER_DIR", filepath.Join(filepath.Dir(abs), "oidc-provider"))
		}
	}
	const addr = "127.0.0.1:8002"
	base := "http://" + addr
	peer := oidcpeer.Start(t, base)
	dir := t.TempDir()
	secret := filepath.Join(dir, "client-secret")
	os.WriteFile(secret, []byte(oidcpeer.ClientSecret), 0o600)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
public_url = %q
data_dir = %q
proxy_socket = "" # hubs of several tests may run at once; the package test covers the socket
log_level = "debug"

[auth]
method = "oidc"
allowed_groups = ["jupyter-users"]

[auth.oidc]
issuer = %q
client_secret_file = %q

[spawner]
# Servers cache who a cookie belongs to for 5 minutes by default (0 would mean forever); the
# test wants to see logout take effect within a second.
args = ["--HubOAuth.cache_max_age=1"]
unit_prefix = "jhgo-oidc"
start_timeout = "240s"
`, addr, base, dir+"/data", peer.Issuer, secret))
	h := startHub(t, cfg, addr)
	out, err := exec.Command(h.cmd.Path, "--config", cfg, "token", "create", "--user", "hubadmin", "--create", "--admin").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	admin := strings.TrimSpace(string(out))
	t.Cleanup(func() { apiDoAt(t, base, "DELETE", "/hub/api/users/alice/server", admin) })

	alice := newBrowser(t, base)
	resp, page := alice.get("/hub/oauth_login?next=%2Fhub%2Fhome")
	if !oidcpeer.IsLoginForm(page) {
		t.Fatalf("login did not reach the provider's form: %s", resp.Request.URL)
	}
	resp, _, err = oidcpeer.SubmitLogin(context.Background(), alice.client, resp.Request.URL.String(), page, "alice", "alice-pw")
	if err != nil || resp.Request.URL.Path != "/hub/home" {
		t.Fatalf("login ended at %v (%v)", resp.Request.URL, err)
	}

	alice.spawnReady(t, "alice", 240*time.Second)
	if resp, body := alice.get(ui("alice")); resp.StatusCode != 200 || resp.Request.URL.Path != ui("alice") {
		t.Fatalf("%s ended at %s with %d:\n%.1000s", ui("alice"), resp.Request.URL, resp.StatusCode, body)
	}

	resp, page = alice.get("/hub/logout")
	if !strings.HasPrefix(resp.Request.URL.String(), peer.Base) {
		t.Fatalf("logout did not end at the provider: %s", resp.Request.URL)
	}
	if resp, _, err = oidcpeer.ConfirmLogout(context.Background(), alice.client, resp.Request.URL.String(), page); err != nil || resp.Request.URL.Path != "/hub/login" {
		t.Fatalf("provider logout ended at %v (%v)", resp, err)
	}
	time.Sleep(1500 * time.Millisecond) // past the server's cache of who the cookie belongs to
	resp, _ = alice.get(ui("alice"))
	if resp.Request.URL.Path == ui("alice") {
		t.Errorf("the server still lets alice's browser in after logout")
	}
	if _, page = alice.get("/hub/oauth_login"); !oidcpeer.IsLoginForm(page) {
		t.Errorf("after logout the provider logged alice in silently")
	}
}

func apiDoAt(t *testing.T, base, method, path, token string) {
	req, _ := http.NewRequest(method, base+path, nil)
	req.Header.Set("Authorization", "token "+token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}
