package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEmptyFileIsAWorkingDefault(t *testing.T) {
	cfg := Default()
	if err := Parse(nil, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.Hub.Listen != "127.0.0.1:8000" || cfg.Auth.Method != "pam" || cfg.APIURLFor() != "http://127.0.0.1:8000/hub/api" {
		t.Errorf("unexpected defaults: %+v", cfg.Hub)
	}
}

func TestValuesParse(t *testing.T) {
	cfg := Default()
	err := Parse([]byte(`
[hub]
listen = "0.0.0.0:9000"
cookie_max_age = "7d"
[spawner]
memory_max = "512M"
cpu_quota = "150%"
tasks_max = 64
start_timeout = "3m"
env = { JUPYTERHUB_SINGLEUSER_APP = "notebook.notebookapp.NotebookApp" }
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Spawner.MemoryMax != 512<<20 || cfg.Spawner.CPUQuota != 150 || cfg.Spawner.StartTimeout.D() != 3*time.Minute || cfg.Hub.CookieMaxAge.D() != 7*24*time.Hour {
		t.Errorf("parsed %+v", cfg.Spawner)
	}
	if cfg.APIURLFor() != "http://127.0.0.1:9000/hub/api" {
		t.Errorf("api url for a wildcard listen = %s", cfg.APIURLFor())
	}
}

func TestGPUSection(t *testing.T) {
	cfg := Default()
	err := Parse([]byte(`
[gpu]
queue = true
default_quota = 0
quota = { students = 1, staff = 4 }
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.GPU.Enabled || !cfg.GPU.Queue || cfg.GPU.DefaultQuota != 0 || cfg.GPU.Quota["students"] != 1 || cfg.GPU.Quota["staff"] != 4 {
		t.Errorf("parsed %+v", cfg.GPU)
	}
	if d := Default(); !d.GPU.Enabled || d.GPU.Queue || d.GPU.DefaultQuota != 1 || !d.Hub.AuthenticateMetrics {
		t.Errorf("defaults: gpu %+v, authenticate_metrics %v", d.GPU, d.Hub.AuthenticateMetrics)
	}
}

func TestUnknownKeyIsNamed(t *testing.T) {
	cfg := Default()
	err := Parse([]byte("[spawner]\nmemory_maxx = \"1G\"\n"), &cfg)
	if err == nil || !strings.Contains(err.Error(), "spawner.memory_maxx") {
		t.Errorf("err = %v, want it to name spawner.memory_maxx", err)
	}
}

func TestBadValuesNameKeyAndFix(t *testing.T) {
	cases := map[string]string{
		"[hub]\nlisten = \"8000\"":                     "hub.listen",
		"[hub]\nbase_url = \"jupyter\"":                "hub.base_url",
		"[hub]\ntrusted_proxies = [\"10.0.0.300\"]":    "hub.trusted_proxies",
		"[auth]\nmethod = \"ldap\"":                    "auth.method",
		"[spawner]\ncmd = [\"jupyterhub-singleuser\"]": "spawner.cmd",
		"[spawner]\nslice = \"users\"":                 "spawner.slice",
		"[spawner]\nport_range = \"80-90\"":            "spawner.port_range",
		"[spawner]\nmemory_max = \"lots\"":             "memory_max",
		"[spawner]\nstart_timeout = \"soon\"":          "start_timeout",
		"[gpu]\ndefault_quota = -1":                    "gpu.default_quota",
		"[gpu]\nquota = { students = -2 }":             "gpu.quota.students",
		"[gpu]\nquota = { \"/jupyter-users\" = 1 }":    `gpu.quota."/jupyter-users": write the group without Keycloak's leading "/" ("jupyter-users")`,
		"[gpu]\nquota = { \" \" = 1 }":                 "gpu.quota: a group name is empty",
		"[gpu]\nqueue = \"yes\"":                       "queue",
		"[gpu]\nquotas = {}":                           "gpu.quotas",
		"[hub]\nauthenticate_metrics = 0":              "authenticate_metrics",
	}
	for src, key := range cases {
		cfg := Default()
		err := Parse([]byte(src), &cfg)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err = %v, want it to mention %s", src, err, key)
		}
	}
}

func TestUsernames(t *testing.T) {
	for name, ok := range map[string]bool{"alice": true, "a.b-c_d": true, "": false, "Alice": false, "../x": false, "-x": false, "a/b": false, strings.Repeat("a", 65): false} {
		if (ValidUsername(name) == nil) != ok {
			t.Errorf("ValidUsername(%q) ok = %v", name, !ok)
		}
	}
}

// The example config documents every key with its default; keep it true.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	data, err := os.ReadFile("../../contrib/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config // zero, so a key missing from the example shows up as a difference
	if err := Parse(data, &cfg); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Spawner.Env, want.Spawner.Args, want.Auth.AdminUsers, want.Auth.AdminGroups = map[string]string{}, []string{}, []string{}, []string{}
	want.Auth.AllowedUsers, want.Auth.AllowedGroups = []string{}, []string{}
	want.Auth.OIDC.AuthParams = map[string]string{}
	want.GPU.Quota = map[string]int{}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("contrib/config.example.toml differs from the defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

// The Keycloak example in contrib must stay a valid configuration.
func TestKeycloakExampleIsValid(t *testing.T) {
	cfg, err := Load("../../contrib/keycloak/config.toml", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.OIDCRedirectURL() != "https://jupyter.example.org/hub/oauth_callback" {
		t.Errorf("redirect URL %s does not match the realm example's", cfg.OIDCRedirectURL())
	}
}
