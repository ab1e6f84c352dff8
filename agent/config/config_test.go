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
	if d := Default(); !d.GPU.Enabled || d.GPU.Queue || d.GPU.DefaultQuota != 1 || d.Hub.PublicMetrics() {
		t.Errorf("defaults: gpu %+v, public metrics %v", d.GPU, d.Hub.PublicMetrics())
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
		"[hub]\nlisten = \"8000\"":                                       "hub.listen",
		"[hub]\nbase_url = \"jupyter\"":                                  "hub.base_url",
		"[hub]\ntrusted_proxies = [\"10.0.0.300\"]":                      "hub.trusted_proxies",
		"[auth]\nmethod = \"ldap\"":                                      "auth.method",
		"[spawner]\ncmd = [\"jupyterhub-singleuser\"]":                   "spawner.cmd",
		"[spawner]\nslice = \"users\"":                                   "spawner.slice",
		"[spawner]\nport_range = \"80-90\"":                              "spawner.port_range",
		"[spawner]\nmemory_max = \"lots\"":                               "memory_max",
		"[spawner]\nstart_timeout = \"soon\"":                            "start_timeout",
		"[gpu]\ndefault_quota = -1":                                      "gpu.default_quota",
		"[gpu]\nquota = { students = -2 }":                               "gpu.quota.students",
		"[gpu]\nquota = { \"/jupyter-users\" = 1 }":                      `gpu.quota."/jupyter-users": write the group without Keycloak's leading "/" ("jupyter-users")`,
		"[gpu]\nquota = { \" \" = 1 }":                                   "gpu.quota: a group name is empty",
		"[gpu]\nqueue = \"yes\"":                                         "queue",
		"[gpu]\nquotas = {}":                                             "gpu.quotas",
		"[hub]\nauthenticate_metrics = 0":                                "authenticate_metrics",
		"[nfs]\nenabled = true\nexport = \"/srv\"":                       "nfs.server",
		"[nfs]\nenabled = true\nserver = \"nas\"":                        "nfs.export",
		"[nfs]\nenabled = true\nserver = \"nas\"\nexport = \"/srv/\"":    "nfs.export",
		"[nfs]\nenabled = true\nserver = \"fe80::1\"\nexport = \"/srv\"": "in brackets",
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

// Names may be as long as their rules allow, and not a character longer (the lengths are checked
// apart from the patterns).
func TestNamesAreRefusedOnlyPastTheirLength(t *testing.T) {
	for _, c := range []struct {
		key  string
		max  int
		with func(*Config, string)
	}{
		{"spawner.unit_prefix", 64, func(c *Config, n string) { c.Spawner.UnitPrefix = n }},
		{"role[0]", 255, func(c *Config, n string) { c.Roles = []Role{{Name: n}} }},
		{"service[0]", 64, func(c *Config, n string) { c.Services = []Service{{Name: n}} }},
		{"profile[0].name", 64, func(c *Config, n string) { c.Profiles = []Profile{{Name: n, Enabled: true}} }},
		{"auth.admin_users", 64, func(c *Config, n string) { c.Auth.AdminUsers = []string{n} }},
	} {
		for _, n := range []int{c.max, c.max + 1} {
			cfg := Default()
			c.with(&cfg, strings.Repeat("a", n))
			err := cfg.Validate()
			if refused := err != nil && strings.Contains(err.Error(), c.key); refused != (n > c.max) {
				t.Errorf("%s of %d characters: Validate() = %v", c.key, n, err)
			}
		}
	}
	if err := ValidUsername(strings.Repeat("a", 64)); err != nil {
		t.Errorf("a username of 64 characters: %v", err)
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
	want.Auth.AllowedUsers, want.Auth.AllowedGroups, want.Hub.TrustedProxies = []string{}, []string{}, []string{}
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

func TestRolesAreValidatedByKey(t *testing.T) {
	good := "[[role]]\nname = \"teachers\"\nscopes = [\"admin:servers!group=students\", \"read:users\"]\nusers = [\"alice\"]\ngroups = [\"staff\"]\n"
	cfg := Default()
	if err := Parse([]byte(good), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || len(cfg.Roles) != 1 || cfg.Roles[0].Groups[0] != "staff" {
		t.Fatalf("a good role: %v, %+v", err, cfg.Roles)
	}
	cfg = Default()
	if err := Parse([]byte("[[role]]\nname = \"x1\"\nscope = [\"read:users\"]"), &cfg); err == nil || !strings.Contains(err.Error(), "role.scope") {
		t.Errorf("a misspelt role key: %v, want it named", err)
	}
	for src, key := range map[string]string{
		"[[role]]\nname = \"admin\"":                                   `role[0] ("admin").name`,
		"[[role]]\nname = \"Teachers\"":                                `role[0] ("Teachers").name`,
		"[[role]]\nscopes = [\"read:users\"]":                          `role[0].name`,
		"[[role]]\nname = \"abc\"\n[[role]]\nname = \"abc\"":           `role[1] ("abc").name`,
		"[[role]]\nname = \"abc\"\nscopes = [\"read:everything\"]":     `role[0] ("abc").scopes: "read:everything"`,
		"[[role]]\nname = \"abc\"\nscopes = [\"read:users!nobody=1\"]": `role[0] ("abc").scopes`,
		"[[role]]\nname = \"abc\"\nusers = [\"Bad User\"]":             `role[0] ("abc").users`,
		"[[role]]\nname = \"abc\"\ngroups = [\"\"]":                    `role[0] ("abc").groups`,
	} {
		cfg := Default()
		if err := Parse([]byte(src), &cfg); err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err = %v, want it to name %s", src, err, key)
		}
	}
}

// agent/scopes' fuzz targets copy the username rule (this package imports scopes); keep them equal.
func TestUsernameRuleMatchesTheScopesFuzzTarget(t *testing.T) {
	src, err := os.ReadFile("../scopes/scopes_fuzz_test.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "regexp.MustCompile(`"+username.String()+"`)") {
		t.Errorf("agent/scopes/scopes_fuzz_test.go no longer checks usernames with %s", username)
	}
}

func TestServicesAreValidatedByKey(t *testing.T) {
	for src, key := range map[string]string{
		"[[service]]\nname = \"a b\"":                                            `service[0] ("a b").name`,
		"[[service]]\nname = \"x\"\napi_token_file = \"token\"":                  `service[0] ("x").api_token_file`,
		"[[service]]\nname = \"x\"\nroles = [\"nosuch\"]":                        `service[0] ("x").roles`,
		"[[service]]\nname = \"x\"\nurl = \"127.0.0.1:10101\"":                   `service[0] ("x").url`,
		"[[service]]\nname = \"x\"\noauth_client_id = \"service-x\"":             `service[0] ("x").oauth_client_id/oauth_redirect_uri`,
		"[[service]]\nname = \"x\"\n[[service]]\nname = \"x\"":                   `service[1] ("x").name`,
		"[[service]]\nname = \"x\"\ninfo = { a = 1 }\ndisplay = false\nurls = 1": "", // Parse refuses it
	} {
		cfg := Default()
		if err := Parse([]byte(src), &cfg); err != nil {
			if key != "" {
				t.Errorf("%q: %v", src, err)
			}
			continue
		}
		if err := cfg.Validate(); err == nil || key == "" || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err = %v, want it to name %s", src, err, key)
		}
	}
	cfg := Default()
	src := "[[role]]\nname = \"teachers\"\n[[service]]\nname = \"grader\"\napi_token_file = \"/etc/t\"\nroles = [\"teachers\", \"admin\"]\nurl = \"http://127.0.0.1:1\"\noauth_client_id = \"service-grader\"\noauth_redirect_uri = \"/services/grader/oauth_callback\"\n"
	if err := Parse([]byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("a good service: %v", err)
	}
}

// Under OIDC, group names written as Keycloak paths are compared without their leading "/";
// check-config prints these notes. Under PAM the names are Unix groups and left alone.
func TestNotesSayHowKeycloakGroupPathsAreRead(t *testing.T) {
	cfg := Default()
	cfg.Auth.AllowedGroups = []string{"/jupyter-users", "staff", "/staff/physics"}
	cfg.Auth.AdminGroups = []string{"/jupyter-admins"}
	if n := cfg.Notes(); len(n) != 0 {
		t.Errorf("notes under PAM: %q", n)
	}
	cfg.Auth.Method = "oidc"
	notes := strings.Join(cfg.Notes(), "\n")
	for _, want := range []string{`auth.allowed_groups: "/jupyter-users" is compared as "jupyter-users"`,
		`auth.allowed_groups: "/staff/physics" is compared as "staff/physics"`, `auth.admin_groups: "/jupyter-admins" is compared as "jupyter-admins"`} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %s:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, `"staff" `) {
		t.Errorf("a name without a slash got a note:\n%s", notes)
	}
	if OIDCGroup("/a/b") != "a/b" || OIDCGroup("//a") != "/a" || OIDCGroup(" /a ") != "a" {
		t.Error("OIDCGroup does not strip exactly one leading slash")
	}
}

func TestLostAccessAndRefreshAgeAreChecked(t *testing.T) {
	for src, key := range map[string]string{
		"[auth.oidc]\non_lost_access = \"kill\"": "auth.oidc.on_lost_access",
		"[auth.oidc]\non_lost_access = \"\"":     "auth.oidc.on_lost_access",
		"[auth.oidc]\nrefresh_age = \"-5m\"":     "auth.oidc.refresh_age",
	} {
		cfg := Default()
		cfg.Auth.Method, cfg.Hub.PublicURL, cfg.Auth.OIDC.Issuer = "oidc", "https://jupyter.example.org", "https://sso.example.org/realms/x"
		if err := Parse([]byte(src), &cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: Validate = %v, want it to name %s", src, err, key)
		}
	}
	cfg := Default()
	cfg.Auth.Method, cfg.Hub.PublicURL, cfg.Auth.OIDC.Issuer = "oidc", "https://jupyter.example.org", "https://sso.example.org/realms/x"
	if err := Parse([]byte("[auth.oidc]\non_lost_access = \"keep\"\nrefresh_age = \"0\""), &cfg); err != nil || cfg.Validate() != nil {
		t.Errorf("keep and 0 refused: %v %v", err, cfg.Validate())
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

func TestPageLimitsAreCheckedAgainstEachOther(t *testing.T) {
	c := Default()
	c.Hub.APIPageDefaultLimit, c.Hub.APIPageMaxLimit = 500, 200
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "hub.api_page_default_limit") {
		t.Errorf("default above the cap: %v, want an error naming hub.api_page_default_limit", err)
	}
	c.Hub.APIPageDefaultLimit, c.Hub.APIPageMaxLimit = 50, 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "hub.api_page_max_limit") {
		t.Errorf("cap 0: %v, want an error naming hub.api_page_max_limit", err)
	}
	c.Hub.APIPageDefaultLimit, c.Hub.APIPageMaxLimit = 1000, 1000
	if err := c.Validate(); err != nil {
		t.Errorf("default = cap = 1000: %v", err)
	}
}
