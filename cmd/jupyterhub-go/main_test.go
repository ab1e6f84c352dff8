package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/test/oidcpeer"
)

func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := run(args, &out, &errb)
	return rc, out.String(), errb.String()
}

func configIn(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte("[hub]\ndata_dir = \""+filepath.Join(dir, "data")+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFlagWorksAfterTheCommandToo(t *testing.T) {
	cfg := configIn(t)
	for _, args := range [][]string{
		{"--config", cfg, "token", "create", "--user", "ops", "--create"},
		{"token", "create", "--config", cfg, "--user", "ops2", "--create"},
		{"token", "create", "--user", "ops3", "--create", "--config=" + cfg},
	} {
		if rc, out, errs := cli(t, args...); rc != 0 || len(strings.TrimSpace(out)) != 64 {
			t.Errorf("%q: rc %d, out %q, err %q", args, rc, out, errs)
		}
	}
}

func TestTokenCreateNeverInventsUsersOrAdmins(t *testing.T) {
	cfg := configIn(t)
	rc, _, errs := cli(t, "--config", cfg, "token", "create", "--user", "ghost")
	if rc == 0 || !strings.Contains(errs, "--create") {
		t.Errorf("token for an unknown user: rc %d, %q; want a refusal that names --create", rc, errs)
	}
	if rc, _, _ := cli(t, "--config", cfg, "token", "create", "--user", "ghost", "--create"); rc != 0 {
		t.Fatalf("--create: rc %d", rc)
	}
	st := openStore(t, cfg)
	u, err := st.GetUser(t.Context(), "ghost")
	st.Close()
	if err != nil || u.Admin {
		t.Errorf("ghost after --create without --admin: %+v, %v; want a plain user", u, err)
	}
	cli(t, "--config", cfg, "token", "create", "--user", "ghost", "--admin")
	st = openStore(t, cfg)
	defer st.Close()
	if u, _ := st.GetUser(t.Context(), "ghost"); !u.Admin {
		t.Error("--admin did not make ghost an admin")
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		if rc, out, _ := cli(t, args...); rc != 0 || !strings.HasPrefix(out, "jupyterhub-go ") {
			t.Errorf("%q: rc %d, %q", args, rc, out)
		}
	}
}

func openStore(t *testing.T, cfgPath string) *store.Store {
	t.Helper()
	cfg, err := config.Load(cfgPath, true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(cfg.Hub.DataDir, "jupyterhub-go.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The first hour: a file with three mistakes is answered with all three, each where it is.
func TestCheckConfigListsEveryProblemWithItsLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(p, []byte("[hub]\nlisten = \"8000\"\n[spawner]\nmemroy_max = \"2G\"\ncpu_quota = \"lots\"\n[auth.pam]\nconf_dir = \""+t.TempDir()+"\"\n"), 0o600)
	rc, _, errs := cli(t, "check-config", "--config", p)
	if rc != 2 {
		t.Errorf("rc %d, want 2", rc)
	}
	for _, want := range []string{p + ":2: hub.listen:", p + ":4: spawner.memroy_max: not a configuration key; did you mean spawner.memory_max?",
		p + ":5: spawner.cpu_quota:", "auth.pam.service:", config.ExamplePath} {
		if !strings.Contains(errs, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, errs)
		}
	}
}

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

// check-config refuses a Vault token file others can read, as the hub does, and says what
// Vault says of the token (here: nothing answers) without failing on it.
func TestCheckConfigChecksTheVaultTokenFile(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(token, []byte("hvs.x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(filepath.Join(dir, "jupyterhub-go"), []byte("auth required pam_deny.so\n"), 0o644)
	body := fmt.Sprintf("[hub]\ndata_dir = %q\n[auth.pam]\nconf_dir = %q\n[vault]\nenabled = true\naddress = \"http://127.0.0.1:1\"\nadmin_token_file = %q\n", dir, dir, token)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc, out, errOut := checkConfigOf(cfg); rc != 2 || !strings.Contains(errOut, "vault.admin_token_file") || !strings.Contains(errOut, "chmod 600 "+token) {
		t.Errorf("mode 0644: check-config = %d:\n%s%s", rc, out, errOut)
	}
	os.Chmod(token, 0o600)
	if rc, out, errOut := checkConfigOf(cfg); rc != 0 || !strings.Contains(out, "vault: Vault at http://127.0.0.1:1 cannot be reached") {
		t.Errorf("mode 0600, Vault down: check-config = %d:\n%s%s", rc, out, errOut)
	}
}
