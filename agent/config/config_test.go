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

func TestUnknownKeyIsNamed(t *testing.T) {
	cfg := Default()
	err := Parse([]byte("[spawner]\nmemory_maxx = \"1G\"\n"), &cfg)
	if err == nil || !strings.Contains(err.Error(), "spawner.memory_maxx") {
		t.Errorf("err = %v, want it to name spawner.memory_maxx", err)
	}
}

func TestBadValuesNameKeyAndFix(t *testing.T) {
	cases := map[string]string{
		"[hub]\nlisten = \"8000\"":                                                                   "hub.listen",
		"[hub]\nbase_url = \"jupyter\"":                                                              "hub.base_url",
		"[hub]\ntrusted_proxies = [\"10.0.0.300\"]":                                                  "hub.trusted_proxies",
		"[auth]\nmethod = \"ldap\"":                                                                  "auth.method",
		"[spawner]\ncmd = [\"jupyterhub-singleuser\"]":                                               "spawner.cmd",
		"[spawner]\nslice = \"users\"":                                                               "spawner.slice",
		"[spawner]\nport_range = \"80-90\"":                                                          "spawner.port_range",
		"[spawner]\nmemory_max = \"lots\"":                                                           "memory_max",
		"[spawner]\nstart_timeout = \"soon\"":                                                        "start_timeout",
		"[nfs]\nenabled = true\nexport = \"/srv\"":                                                   "nfs.server",
		"[nfs]\nenabled = true\nserver = \"nas\"":                                                    "nfs.export",
		"[nfs]\nenabled = true\nserver = \"nas\"\nexport = \"/srv/\"":                                "nfs.export",
		"[nfs]\nenabled = true\nserver = \"fe80::1\"\nexport = \"/srv\"":                             "in brackets",
		"[nfs]\nenabled = true\nserver = \"nas\"\nexport = \"/srv\"\nwhat = \"{SERVER}:{USER}\"":     "unknown placeholder {USER}",
		"[nfs]\nenabled = true\nserver = \"nas\"\nexport = \"/srv\"\nwhat = \"{EXPORT}/{USERNAME}\"": "nfs.what",
		"[nfs]\nenabled = true\nserver = \"nas\"\nexport = \"/srv\"\nwhere = \"home/{USERNAME}\"":    "nfs.where",
		"[nfs]\nenabled = true\nserver = \"nas\"\nexport = \"/srv\"\noptions = \"rw, hard\"":         "nfs.options",
		"[nfs]\nenabled = true\nserver = \"nas\"\nexport = \"/srv\"\nmount_timeout = \"60s\"":        "spawner.start_timeout",
		"[nfs]\nenabled = true\nserver = \"nas\"\nexport = \"/srv\"\nunmount_after = \"-1s\"":        "nfs.unmount_after",
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

// NaN, Inf and numbers too large for the field used to be accepted and converted with
// platform-dependent results: memory_max = "NaN" was 8 EiB on amd64, cpu_quota = "inf" passed
// Validate and failed every spawn, cookie_max_age = "1e300d" became a negative duration.
func TestNonFiniteAndHugeNumbersAreRefused(t *testing.T) {
	for _, src := range []string{
		"[spawner]\nmemory_max = \"NaN\"", "[spawner]\nmemory_max = \"inf\"", "[spawner]\nmemory_max = \"1e30\"",
		"[spawner]\nmemory_max = \"16777216T\"", "[spawner]\nmemory_max = \"18446744073709551615\"",
		"[spawner]\ncpu_quota = \"nan\"", "[spawner]\ncpu_quota = \"+Inf%\"", "[spawner]\ncpu_quota = \"1e300%\"",
		"[hub]\ncookie_max_age = \"1e300d\"", "[hub]\ncookie_max_age = \"NaNd\"", "[auth.oidc]\nrefresh_before = \"-infd\"",
	} {
		cfg := Default()
		key := strings.SplitN(strings.SplitN(src, "\n", 2)[1], " ", 2)[0]
		if err := Parse([]byte(src), &cfg); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err = %v, want it to name %s", src, err, key)
		}
	}
	cfg := Default()
	if err := Parse([]byte("[spawner]\nmemory_max = \"16T\"\ncpu_quota = \"6400%\"\nstart_timeout = \"30d\""), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Spawner.MemoryMax != 16<<40 || cfg.Spawner.CPUQuota != 6400 || cfg.Spawner.StartTimeout.D() != 30*24*time.Hour {
		t.Errorf("parsed %+v", cfg.Spawner)
	}
}

// The TOML decoder silently kept a map as it was when given a string or an array (env = "A=b"),
// and wrapped tasks_max = -1 to 2^64-1, which systemd reads as "infinity".
func TestWrongTypesAreRefusedNotIgnored(t *testing.T) {
	for src, key := range map[string]string{
		"[spawner]\nenv = \"FOO=bar\"":                      "spawner.env",
		"[spawner]\nenv = [\"FOO=bar\"]":                    "spawner.env",
		"[[spawner.env]]\nFOO = \"bar\"":                    "spawner.env",
		"[auth.oidc]\nauth_params = \"kc_idp_hint=github\"": "auth.oidc.auth_params",
		"[spawner]\ntasks_max = -1":                         "spawner.tasks_max",
	} {
		cfg := Default()
		if err := Parse([]byte(src), &cfg); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err = %v, want it to name %s", src, err, key)
		}
	}
	for _, src := range []string{"[spawner]\nenv = { A = \"1\" }", "[spawner.env]\nA = \"1\"", "spawner.env.A = \"1\"", "[spawner]\nenv.A = \"1\""} {
		cfg := Default()
		if err := Parse([]byte(src), &cfg); err != nil || cfg.Spawner.Env["A"] != "1" {
			t.Errorf("%q: err = %v, env = %v", src, err, cfg.Spawner.Env)
		}
	}
}

// The decoder matched keys to fields ignoring case, so "CMD" set spawner.cmd, and with both
// "memory_max" and "Memory_Max" in a file which one won changed from start to start.
func TestKeysDifferingInCaseAreUnknown(t *testing.T) {
	for src, key := range map[string]string{
		"[spawner]\nCMD = [\"/bin/x\"]":                           "spawner.CMD",
		"[Spawner]\ncmd = [\"/bin/x\"]":                           "Spawner",
		"[spawner]\nmemory_max = \"1G\"\nMemory_Max = \"4G\"":     "spawner.Memory_Max",
		"[auth.OIDC]\nissuer = \"https://sso.example.org\"":       "auth.OIDC",
		"[hub]\nListen = \"0.0.0.0:80\"\nlisten = \"[::1]:8000\"": "hub.Listen",
	} {
		cfg := Default()
		err := Parse([]byte(src), &cfg)
		if err == nil || !strings.Contains(err.Error(), "unknown key(s) ") || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err = %v, want unknown key %s", src, err, key)
		}
	}
	cfg := Default()
	if err := Parse([]byte("[spawner.env]\nPATH_EXTRA = \"x\"\npath_extra = \"y\""), &cfg); err != nil || len(cfg.Spawner.Env) != 2 {
		t.Errorf("environment names are not config keys: err = %v, env = %v", err, cfg.Spawner.Env)
	}
}

// [nfs] is checked only once it is enabled; enabled with a server and an export, the defaults
// make a working mount of {SERVER}:{EXPORT}/{USERNAME} on the passwd home.
func TestNFSSection(t *testing.T) {
	cfg := Default()
	if err := Parse([]byte("[nfs]\nserver = \"has spaces\"\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("a disabled [nfs] was checked: %v", err)
	}
	cfg = Default()
	if err := Parse([]byte("[nfs]\nenabled = true\nserver = \"nas.example.org\"\nexport = \"/srv/homes\"\nunmount_after = \"0s\"\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("enabled [nfs] with server and export: %v", err)
	}
	if cfg.NFS.What != "{SERVER}:{EXPORT}/{USERNAME}" || cfg.NFS.Where != "{HOME}" || cfg.NFS.MountTimeout.D() != 30*time.Second {
		t.Errorf("nfs defaults: %+v", cfg.NFS)
	}
}

// The seed setup's JUPYTER_NFS_IP and JUPYTER_NFS_PATH override nfs.server and nfs.export when
// they are set and not empty.
func TestNFSEnvironmentOverrides(t *testing.T) {
	env := map[string]string{"JUPYTER_NFS_IP": "10.0.0.5", "JUPYTER_NFS_PATH": ""}
	cfg := Default()
	cfg.NFS.Server, cfg.NFS.Export = "nas", "/srv/homes"
	cfg.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if cfg.NFS.Server != "10.0.0.5" || cfg.NFS.Export != "/srv/homes" {
		t.Errorf("after the environment: server %q export %q, want 10.0.0.5 and the file's /srv/homes", cfg.NFS.Server, cfg.NFS.Export)
	}
	dir := t.TempDir()
	path := dir + "/config.toml"
	if err := os.WriteFile(path, []byte("[nfs]\nserver = \"nas\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JUPYTER_NFS_IP", "192.0.2.7")
	t.Setenv("JUPYTER_NFS_PATH", "/export/home")
	cfg, err := Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NFS.Server != "192.0.2.7" || cfg.NFS.Export != "/export/home" {
		t.Errorf("Load did not apply the environment: %+v", cfg.NFS)
	}
}
