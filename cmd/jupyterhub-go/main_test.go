package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/test/oidcpeer"
)

// oidcConfig writes a config file for a hub that logs in at issuer, with extra TOML under [auth],
// and a client secret file of the given mode.
func oidcConfig(t *testing.T, issuer, auth string, secretMode os.FileMode) (cfgPath, secretPath string) {
	t.Helper()
	dir := t.TempDir()
	secretPath = filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secretPath, []byte(oidcpeer.ClientSecret), secretMode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secretPath, secretMode); err != nil { // whatever the umask made of it
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "config.toml")
	src := fmt.Sprintf(`[hub]
public_url = "http://127.0.0.1:8000"
data_dir = %q
[auth]
method = "oidc"
%s
[auth.oidc]
issuer = %q
client_secret_file = %q
`, filepath.Join(dir, "data"), auth, issuer, secretPath)
	if err := os.WriteFile(cfgPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, secretPath
}

func checkConfigOf(cfgPath string) (rc int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	rc = run([]string{"--config", cfgPath, "check-config"}, &out, &errOut)
	return rc, out.String(), errOut.String()
}

// Group names copied from Keycloak's console ("/jupyter-users") used to pass check-config and then
// match no one. They match now; check-config says how it reads them.
func TestCheckConfigNotesKeycloakGroupPaths(t *testing.T) {
	peer := oidcpeer.Start(t, "http://127.0.0.1:8000")
	cfg, _ := oidcConfig(t, peer.Issuer, `allowed_groups = ["/jupyter-users", "staff"]
admin_groups = ["/jupyter-admins"]`, 0o600)
	rc, out, errOut := checkConfigOf(cfg)
	if rc != 0 || !strings.Contains(out, "is valid") {
		t.Fatalf("check-config = %d:\n%s%s", rc, out, errOut)
	}
	for _, want := range []string{`auth.allowed_groups: "/jupyter-users" is compared as "jupyter-users"`, `auth.admin_groups: "/jupyter-admins" is compared as "jupyter-admins"`} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config does not say %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"staff"`) {
		t.Errorf("check-config remarks on a group written without a slash:\n%s", out)
	}
}

// A client secret file others can read used to pass check-config (the hub only logged a
// warning): anyone on the host could read the secret and act as the hub at the provider.
func TestCheckConfigRefusesASecretFileOthersCanRead(t *testing.T) {
	peer := oidcpeer.Start(t, "http://127.0.0.1:8000")
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		cfg, secret := oidcConfig(t, peer.Issuer, "", mode)
		rc, out, errOut := checkConfigOf(cfg)
		if rc != 2 || !strings.Contains(errOut, "auth.oidc.client_secret_file") || !strings.Contains(errOut, "chmod 600 "+secret) {
			t.Errorf("mode %o: check-config = %d:\n%s%s", mode, rc, out, errOut)
		}
	}
	cfg, _ := oidcConfig(t, peer.Issuer, "", 0o400)
	if rc, out, errOut := checkConfigOf(cfg); rc != 0 {
		t.Errorf("mode 0400: check-config = %d:\n%s%s", rc, out, errOut)
	}
}
