package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A new admin's file with three mistakes gets all three at once, each with its line, its key and
// what to do, instead of one per try.
func TestCheckReportsEveryProblemWithItsLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, []byte(`# my hub
[hub]
listen = "8000"

[spawner]
memroy_max = "2G"
cpu_quota = "lots"
`), 0o600)
	_, problems := Check(path, true)
	got := []string{}
	for _, p := range problems {
		got = append(got, p.String())
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		"line 6: spawner.memroy_max: not a configuration key; did you mean spawner.memory_max?",
		"line 3: hub.listen:",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q in:\n%s", want, joined)
		}
	}
	if len(problems) < 2 {
		t.Errorf("want every problem, got:\n%s", joined)
	}
}

func TestCheckFindsTheValueProblemsBesideUnknownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, []byte("[hub]\nlisten = \"nope\"\nbase_url = \"x\"\n[auth]\nmethod = \"pam\"\nalowed_users = [\"a\"]\n"), 0o600)
	_, problems := Check(path, true)
	lines := map[string]int{}
	for _, p := range problems {
		lines[p.Key] = p.Line
	}
	if lines["hub.listen"] != 2 || lines["hub.base_url"] != 3 || lines["auth.alowed_users"] != 6 || len(problems) != 3 {
		t.Errorf("problems %+v", problems)
	}
	if m := didYouMean("auth.alowed_users"); m != "auth.allowed_users" {
		t.Errorf("did you mean %q", m)
	}
	if m := didYouMean("hub.memory_max"); m != "spawner.memory_max" {
		t.Errorf("a key in the wrong table: did you mean %q", m)
	}
}

// serve and check-config read the file through Check: the seeds' JUPYTER_NFS_* variables must
// reach the configuration there too, as through Load.
func TestCheckAppliesTheEnvironment(t *testing.T) {
	t.Setenv(EnvNFSServer, "192.0.2.9")
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, []byte("[nfs]\nserver = \"nas\"\n"), 0o600)
	cfg, problems := Check(path, true)
	if cfg.NFS.Server != "192.0.2.9" || len(problems) != 0 {
		t.Errorf("nfs.server %q, problems %v", cfg.NFS.Server, problems)
	}
}
