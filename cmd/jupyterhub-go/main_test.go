package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
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
