package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// whoamiService is a service written against Debian's jupyterhub.services.auth.HubOAuth, as
// JupyterHub's documentation shows services are written: it logs visitors in through the hub and
// answers with who they are.
const whoamiService = `
import json, os
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.web import Application, RequestHandler, authenticated
from jupyterhub.services.auth import HubOAuthenticated, HubOAuthCallbackHandler

class WhoAmI(HubOAuthenticated, RequestHandler):
    @authenticated
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"name": self.get_current_user()["name"]}))

prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
app = Application([(prefix, WhoAmI), (prefix + "oauth_callback", HubOAuthCallbackHandler)], cookie_secret=os.urandom(32))
HTTPServer(app).listen(10101, "127.0.0.1")
print("whoami listening", flush=True)
IOLoop.current().start()
`

// TestHubOAuthServiceLogsAliceInAndRefusesBob runs a real HubOAuth service behind the hub: alice,
// whose role gives her access:services!service=whoami, gets in through the hub's login; bob does
// not.
func TestHubOAuthServiceLogsAliceInAndRefusesBob(t *testing.T) {
	dir := t.TempDir()
	const addr = "127.0.0.1:8002"
	const token = "e2e-whoami-service-token-0123456789"
	tokenFile := filepath.Join(dir, "whoami-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "whoami.py")
	os.WriteFile(script, []byte(whoamiService), 0o644)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
proxy_socket = "" # hubs of several tests may run at once; the package test covers the socket
[spawner]
unit_prefix = "jhgo-e2e-svc"

[[role]]
name = "whoami-users"
users = ["alice"]
scopes = ["access:services!service=whoami"]

[[service]]
name = "whoami"
api_token_file = %q
url = "http://127.0.0.1:10101"
oauth_client_id = "service-whoami"
oauth_redirect_uri = "/services/whoami/oauth_callback"
oauth_no_confirm = true
`, addr, dir+"/data", tokenFile))
	startHub(t, cfg, addr)

	svc := exec.Command("python3", script)
	svc.Env = append(os.Environ(),
		"JUPYTERHUB_API_TOKEN="+token, "JUPYTERHUB_API_URL=http://"+addr+"/hub/api",
		"JUPYTERHUB_SERVICE_NAME=whoami", "JUPYTERHUB_SERVICE_PREFIX=/services/whoami/",
		"JUPYTERHUB_CLIENT_ID=service-whoami", "JUPYTERHUB_OAUTH_CALLBACK_URL=/services/whoami/oauth_callback",
		"JUPYTERHUB_BASE_URL=/", "JUPYTERHUB_HOST=",
		`JUPYTERHUB_OAUTH_ACCESS_SCOPES=["access:services!service=whoami"]`, `JUPYTERHUB_OAUTH_SCOPES=["access:services!service=whoami"]`)
	var out strings.Builder
	svc.Stdout, svc.Stderr = &out, &out
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Process.Kill(); svc.Wait(); t.Logf("whoami service output:\n%s", out.String()) })
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "whoami listening") {
		if time.Now().After(deadline) || svc.ProcessState != nil {
			t.Fatalf("the service did not start:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	alice := newBrowser(t, "http://"+addr)
	alice.login("alice", "alice-pw")
	resp, body := alice.get("/services/whoami/")
	var who struct{ Name string }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &who) != nil || who.Name != "alice" {
		t.Errorf("alice at the service ended at %s with %d:\n%.1000s", resp.Request.URL, resp.StatusCode, body)
	}

	bob := newBrowser(t, "http://"+addr)
	bob.login("bob", "bob-pw")
	if resp, body := bob.get("/services/whoami/"); resp.StatusCode != 403 {
		t.Errorf("bob at the service ended at %s with %d, want 403:\n%.600s", resp.Request.URL, resp.StatusCode, body)
	}
}
