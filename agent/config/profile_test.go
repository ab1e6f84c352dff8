package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const seedProfiles = `
[[profile]]
name = "minimal"
display_name = "Minimal"
[[profile]]
name = "datascience"
display_name = "Data science"
description = "pandas, scikit-learn, matplotlib"
enabled = true
default = true
cmd = ["/opt/venvs/datascience/bin/jupyterhub-singleuser"]
env = { VIRTUAL_ENV = "/opt/venvs/datascience" }
memory_max = "4G"
cpu_quota = "200%"
tasks_max = 512
[[profile]]
name = "buun-stack-cuda"
mig_profile = "1g.10gb"
allowed_groups = ["gpu-users"]
allowed_users = ["alice"]
`

func TestProfilesParse(t *testing.T) {
	cfg := Default()
	if err := Parse([]byte(seedProfiles), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Profiles) != 3 {
		t.Fatalf("%d profiles", len(cfg.Profiles))
	}
	ds := cfg.Profiles[1]
	if !ds.Enabled || !ds.Default || ds.MemoryMax != 4<<30 || ds.CPUQuota != 200 || ds.TasksMax != 512 ||
		ds.Env["VIRTUAL_ENV"] != "/opt/venvs/datascience" || ds.Cmd[0] != "/opt/venvs/datascience/bin/jupyterhub-singleuser" {
		t.Errorf("datascience = %+v", ds)
	}
	if cfg.Profiles[0].Enabled {
		t.Error("a profile without enabled is enabled")
	}
	if p := cfg.Profiles[2]; p.MIGProfile != "1g.10gb" || p.AllowedGroups[0] != "gpu-users" {
		t.Errorf("buun-stack-cuda = %+v", p)
	}
}

// The decoder would leave env as it was for a value that is not a table.
func TestProfileEnvMustBeATable(t *testing.T) {
	cfg := Default()
	err := Parse([]byte("[[profile]]\nname = \"a\"\nenv = { A = \"b\" }\n[[profile]]\nname = \"b\"\nenv = \"VIRTUAL_ENV=/opt/x\"\n"), &cfg)
	if err == nil || !strings.Contains(err.Error(), "profile.env: must be a table") {
		t.Errorf("env = \"...\": %v", err)
	}
}

// Every mistake is reported at once, each with profile[N].key and the fix.
func TestProfileValidationNamesEachKey(t *testing.T) {
	cfg := Default()
	cfg.Profiles = []Profile{
		{Name: "Data Science", Default: true},
		{Name: "base", Default: true, Cmd: []string{"jupyterhub-singleuser"}, Env: map[string]string{"1BAD": "x"}},
		{Name: "base", GPUs: 1, MIGProfile: "1g.10gb"},
		{Name: "gpu", GPUs: -1, MIGProfile: "big", AllowedUsers: []string{"Bob"}, AllowedGroups: []string{"/staff", ""}},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`profile[0].name: "Data Science" must be`,
		`profile[1].cmd:`,
		`profile[1].env: "1BAD"`,
		`profile[2].name: "base" is also the name of profile[1]`,
		`profile[2].gpus/mig_profile: set gpus`,
		`profile[3].gpus: -1`,
		`profile[3].mig_profile: "big"`,
		`profile[3].allowed_users: invalid username "Bob"`,
		`profile[3].allowed_groups: write the group without Keycloak's leading "/" ("staff")`,
		`profile[3].allowed_groups: "" is not a group name`,
		`profile.default: profile[0] ("Data Science"), profile[1] ("base") are all marked default; mark at most one`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	cfg.Profiles = []Profile{{Name: "gpu", MIGProfile: "MIG 3g.40gb"}, {Name: "negative", TasksMax: 1 << 63}}
	if err := cfg.Validate(); err == nil || strings.Contains(err.Error(), "mig_profile") || !strings.Contains(err.Error(), "profile[1].tasks_max: must not be negative") {
		t.Errorf("MIG 3g.40gb is what the gpu step reads; a wrapped negative tasks_max is not: %v", err)
	}
}

// The seeds switch profiles with JUPYTER_PROFILE_<NAME>_ENABLED (NAME upper-cased, '-' as
// '_'): it overrides the file either way, an empty one leaves the file's value, and a value that
// is no boolean is a problem check-config reports.
func TestProfileEnabledFromTheEnvironment(t *testing.T) {
	env := map[string]string{
		"JUPYTER_PROFILE_MINIMAL_ENABLED":         "1",
		"JUPYTER_PROFILE_DATASCIENCE_ENABLED":     "false",
		"JUPYTER_PROFILE_BUUN_STACK_CUDA_ENABLED": "TRUE",
	}
	cfg := Default()
	if err := Parse([]byte(seedProfiles), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if !cfg.Profiles[0].Enabled || cfg.Profiles[1].Enabled || !cfg.Profiles[2].Enabled {
		t.Errorf("enabled = %v %v %v, want true false true", cfg.Profiles[0].Enabled, cfg.Profiles[1].Enabled, cfg.Profiles[2].Enabled)
	}
	if got := ProfileEnvVar("buun-stack"); got != "JUPYTER_PROFILE_BUUN_STACK_ENABLED" {
		t.Errorf("ProfileEnvVar = %q", got)
	}

	cfg = Default()
	Parse([]byte(seedProfiles), &cfg)
	cfg.ApplyEnv(func(k string) (string, bool) {
		if k == "JUPYTER_PROFILE_DATASCIENCE_ENABLED" {
			return "", true
		}
		return "", false
	})
	if !cfg.Profiles[1].Enabled {
		t.Error("an empty variable switched datascience off")
	}

	t.Setenv("JUPYTER_PROFILE_MINIMAL_ENABLED", "yes please")
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, []byte(seedProfiles), 0o600)
	_, problems := Check(path, true)
	if len(problems) != 1 || problems[0].Key != "profile[0].enabled" || !strings.Contains(problems[0].Message, `JUPYTER_PROFILE_MINIMAL_ENABLED="yes please" in the hub's environment is not 1, 0, true or false`) {
		t.Errorf("problems %v", problems)
	}
}

// The example configuration's profiles are the seeds' list, only datascience on.
func TestExampleProfilesAreTheSeeds(t *testing.T) {
	data, err := os.ReadFile("../../contrib/config.example.toml")
	if err != nil {
		t.Skip(err)
	}
	// The example has every key commented out; its profiles are a block to uncomment.
	var b strings.Builder
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "# [[profile]]") {
			in = true
		}
		if in {
			if !strings.HasPrefix(l, "#") {
				in = false
				continue
			}
			b.WriteString(strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ") + "\n")
		}
	}
	cfg := Default()
	if err := Parse([]byte(b.String()), &cfg); err != nil {
		t.Fatalf("%v in:\n%s", err, b.String())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var names, on []string
	for _, p := range cfg.Profiles {
		names = append(names, p.Name)
		if p.Enabled {
			on = append(on, p.Name)
		}
	}
	if got := strings.Join(names, " "); got != "minimal base datascience pyspark pytorch tensorflow buun-stack buun-stack-cuda" {
		t.Errorf("profiles %s", got)
	}
	if strings.Join(on, " ") != "datascience" {
		t.Errorf("enabled: %v, want only datascience", on)
	}
}

// check-config points at the line of the [[profile]] key that is wrong.
func TestCheckPutsProfileProblemsOnTheirLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, []byte("[[profile]]\nname = \"base\"\n\n[[profile]]\nname = \"base\"\ncpu_quota = \"100%\"\nallowed_groups = [\"/staff\"]\n"), 0o600)
	_, problems := Check(path, true)
	lines := map[string]int{}
	for _, p := range problems {
		lines[p.Key] = p.Line
	}
	if lines["profile[1].name"] != 5 || lines["profile[1].allowed_groups"] != 7 || len(problems) != 2 {
		t.Errorf("problems %+v", problems)
	}
}
