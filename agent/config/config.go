// Package config holds jupyterhub-go's configuration: one TOML file in which every key has a
// default, so an empty file (or none at all) runs a hub on 127.0.0.1:8000 with PAM login.
//
// Load rejects unknown keys by name, and Validate explains each problem with the key and the fix,
// because a hub that starts with a silently ignored typo is worse than one that refuses to start.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
)

// DefaultPath is where the packaged unit looks for the config.
const DefaultPath = "/etc/jupyterhub-go/config.toml"

// Config is the whole configuration file.
type Config struct {
	Hub     Hub     `toml:"hub"`
	Auth    Auth    `toml:"auth"`
	Spawner Spawner `toml:"spawner"`
	NFS     NFS     `toml:"nfs"`
	GPU     GPU     `toml:"gpu"`
	Vault   Vault   `toml:"vault"`
	Cull    Cull    `toml:"cull"`
	// Roles are [[role]] tables: JupyterHub's c.JupyterHub.load_roles.
	Roles []Role `toml:"role"`
	// Services are [[service]] tables: JupyterHub's c.JupyterHub.services, for services the hub
	// does not start (the hub knows their token and, optionally, where they listen).
	Services []Service `toml:"service"`
	Profiles []Profile `toml:"profile"` // [[profile]]: see profile.go
}

// Service is one [[service]]: something that calls the hub's API as itself (an idle culler, a
// grading tool), and may be reached through the hub and log users in through it.
type Service struct {
	Name string `toml:"name"`
	// APITokenFile holds the service's API token (mode 0600, like the OIDC client secret);
	// "" for a service that never calls the API.
	APITokenFile string `toml:"api_token_file"`
	// Roles name [[role]]s (or "admin") whose scopes the service holds.
	Roles []string `toml:"roles"`
	// URL is where the service listens (e.g. "http://127.0.0.1:10101"); the hub then routes
	// /services/<name>/ to it.
	URL string `toml:"url"`
	// OAuthClientID and OAuthRedirectURI register the service as an OAuth client of the hub, so
	// that it can log users in (jupyterhub.services.auth.HubOAuth).
	OAuthClientID    string `toml:"oauth_client_id"`
	OAuthRedirectURI string `toml:"oauth_redirect_uri"`
	// OAuthNoConfirm skips the page that asks users to confirm they log in to the service, as
	// JupyterHub's oauth_no_confirm (default false: they are asked).
	OAuthNoConfirm bool `toml:"oauth_no_confirm"`
	// Display lists the service on the home page's services menu (default true).
	Display *bool `toml:"display"`
	// Info is shown in the service model as it is.
	Info map[string]any `toml:"info"`
}

// Role is one [[role]]: scopes granted to the users and groups named, on top of the default
// roles every user ("user") and every admin ("admin") holds.
type Role struct {
	Name        string   `toml:"name"`
	Description string   `toml:"description"`
	Scopes      []string `toml:"scopes"`
	Users       []string `toml:"users"`
	Groups      []string `toml:"groups"`
}

// Hub is the [hub] section: where the hub listens and keeps its state.
type Hub struct {
	// Listen is the address of the hub's one HTTP port (pages, API, and the /user/ router).
	Listen string `toml:"listen"`
	// BaseURL is the path prefix of everything the hub serves, "/" unless the hub shares a host.
	BaseURL string `toml:"base_url"`
	// PublicURL is how browsers reach the hub (e.g. https://jupyter.example.org); "" means "as requested".
	PublicURL string `toml:"public_url"`
	// SubdomainHost, e.g. "https://jupyter.example.org", puts each user's server on a host of its
	// own, https://alice.jupyter.example.org/user/alice/: a page one user serves then runs on an
	// origin of its own, never the hub's, and the hub's cookie never reaches it. Needs a wildcard
	// DNS name and certificate. "" keeps every server under the hub's host.
	SubdomainHost string `toml:"subdomain_host"`
	// DataDir holds the sqlite database, the cookie secret and the servers' environment files.
	DataDir string `toml:"data_dir"`
	// APIURL is the hub API as user servers reach it; "" derives it from Listen.
	APIURL string `toml:"api_url"`
	// ProxySocket is a unix socket the hub listens on besides Listen, for the reverse proxy on this
	// host (the shipped nginx site connects to it). Only the proxy's group may connect, so
	// X-Forwarded-* headers that arrive over it are the proxy's own; over TCP, loopback included,
	// they could come from any user's server on this host. "" listens on TCP only.
	ProxySocket string `toml:"proxy_socket"`
	// ProxySocketGroup owns ProxySocket (mode 0660); "" picks the group the distribution's nginx
	// workers run as: www-data (Debian, Ubuntu), http (Arch) or nginx, whichever exists.
	ProxySocketGroup string `toml:"proxy_socket_group"`
	// TrustedProxies are the TCP networks whose X-Forwarded-* headers are believed. Empty by
	// default: user code on this host connects from loopback too.
	TrustedProxies []string `toml:"trusted_proxies"`
	// CookieMaxAge bounds browser logins and the OAuth tokens issued to user servers.
	CookieMaxAge Duration `toml:"cookie_max_age"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// MaxBodyBytes caps API request bodies.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// BodyTimeout bounds reading a request body to the hub's own pages and API (not /user/).
	BodyTimeout Duration `toml:"body_timeout"`
	// MetricsPublic serves /hub/metrics without the read:metrics scope (JupyterHub 5's
	// authenticate_prometheus = false). AuthenticateMetrics is its deprecated inverse, still read
	// (nil: not in the file); use PublicMetrics, which combines them.
	MetricsPublic       bool  `toml:"metrics_public"`
	AuthenticateMetrics *bool `toml:"authenticate_metrics"`
	// APIPageDefaultLimit and APIPageMaxLimit are JupyterHub's api_page_default_limit and
	// api_page_max_limit (paging.go).
	APIPageDefaultLimit int `toml:"api_page_default_limit"`
	APIPageMaxLimit     int `toml:"api_page_max_limit"`
	// AllowNamedServers and NamedServerLimitPerUser: see named.go.
	AllowNamedServers       bool `toml:"allow_named_servers"`
	NamedServerLimitPerUser int  `toml:"named_server_limit_per_user"`
}

// Auth is the [auth] section: who may log in and who is an admin.
type Auth struct {
	Method        string   `toml:"method"`
	AdminUsers    []string `toml:"admin_users"`
	AdminGroups   []string `toml:"admin_groups"`
	AllowedUsers  []string `toml:"allowed_users"`
	AllowedGroups []string `toml:"allowed_groups"`
	// ManageGroups makes each user's groups follow the authenticator (Unix groups, the identity
	// provider's claims) at every login, as JupyterHub's Authenticator.manage_groups does. Unlike
	// JupyterHub, it defaults to true: on bare metal the Unix groups are the truth. With false,
	// logins leave groups alone and only the REST API changes them.
	ManageGroups bool `toml:"manage_groups"`
	// MaxFailedLogins is how many wrong passwords an account may see within FailedLoginWindow
	// before the login form refuses it for the rest of the window; one address may fail four
	// times as often (it may be an office behind one NAT).
	MaxFailedLogins   int      `toml:"max_failed_logins"`
	FailedLoginWindow Duration `toml:"failed_login_window"`
	PAM               PAM      `toml:"pam"`
	OIDC              OIDC     `toml:"oidc"`
}

// OIDC is [auth.oidc]: login through an OpenID Connect provider such as Keycloak.
type OIDC struct {
	// Issuer is the provider's issuer URL, e.g. "https://sso.example.org/realms/main".
	Issuer   string `toml:"issuer"`
	ClientID string `toml:"client_id"`
	// ClientSecretFile holds the client secret; it stays out of this file on purpose.
	ClientSecretFile string `toml:"client_secret_file"`
	// RedirectURL is the callback registered at the provider; "" derives it from hub.public_url.
	RedirectURL string   `toml:"redirect_url"`
	Scopes      []string `toml:"scopes"`
	// UsernameClaim and GroupsClaims are dotted claim paths.
	UsernameClaim string   `toml:"username_claim"`
	GroupsClaims  []string `toml:"groups_claims"`
	// UserInfo also reads claims from the userinfo endpoint.
	UserInfo bool `toml:"userinfo"`
	// PostLogoutRedirectURL is where the provider sends the browser after logout; "" derives the
	// hub's login page from hub.public_url.
	PostLogoutRedirectURL string `toml:"post_logout_redirect_url"`
	// AuthParams are extra authorization request parameters, e.g. { kc_idp_hint = "github" }.
	AuthParams map[string]string `toml:"auth_params"`
	// RefreshAge is how old a login's last refresh at the provider may be before a request by
	// its user (cookie, API or OAuth token; not a server's own token) refreshes it first and
	// applies the groups the provider sends now (JupyterHub's auth_refresh_age); 0 refreshes
	// only before spawns.
	RefreshAge Duration `toml:"refresh_age"`
	// RefreshBefore: when the provider cannot be reached before a spawn, the spawn goes on with
	// the stored login only if its access token is good for longer than this.
	RefreshBefore Duration `toml:"refresh_before"`
	// OnLostAccess is what happens to the running servers of a user who lost access (no longer
	// allowed, or the provider refused to renew their login before it ran out): "stop" or
	// "keep". Their hub sessions and OAuth tokens end either way.
	OnLostAccess string `toml:"on_lost_access"`
}

// PAM is [auth.pam].
type PAM struct {
	Service string `toml:"service"`
	ConfDir string `toml:"conf_dir"`
	// MinUID keeps system accounts (root included) out even if they have a password.
	MinUID int `toml:"min_uid"`
}

// Spawner is the [spawner] section: how each user's server unit is built.
type Spawner struct {
	Cmd        []string          `toml:"cmd"`
	Args       []string          `toml:"args"`
	DefaultURL string            `toml:"default_url"`
	Env        map[string]string `toml:"env"`
	// EnvKeep copies these variables from the hub's own environment, as JupyterHub's env_keep does.
	EnvKeep []string `toml:"env_keep"`
	// Path is the PATH the server starts with.
	Path string `toml:"path"`
	// WorkingDir is the server's working directory; "" is the user's home. {USERNAME} is expanded.
	WorkingDir string `toml:"working_dir"`

	MemoryMax Size    `toml:"memory_max"`
	CPUQuota  Percent `toml:"cpu_quota"`
	TasksMax  uint64  `toml:"tasks_max"`
	Slice     string  `toml:"slice"`

	PrivateTmp      bool   `toml:"private_tmp"`
	NoNewPrivileges bool   `toml:"no_new_privileges"`
	ProtectSystem   string `toml:"protect_system"`
	// PrivateHomes shows each server its own home only: /home (and /root) are empty in the unit
	// but for the user's home, whatever the modes of the others.
	PrivateHomes bool `toml:"private_homes"`
	// UMask is the servers' umask, in octal: "0077" keeps new files private to their owner.
	UMask string `toml:"umask"`

	UnitPrefix string `toml:"unit_prefix"`
	// StartTimeout bounds the whole spawn, from request to the server answering HTTP.
	StartTimeout Duration `toml:"start_timeout"`
	// SlowSpawnTimeout is how long the API waits before answering 202 instead of 201.
	SlowSpawnTimeout Duration `toml:"slow_spawn_timeout"`
	// StopTimeout bounds stopping a unit.
	StopTimeout Duration `toml:"stop_timeout"`
	// PortRange is where user servers' ports are picked, as "low-high". Inside the kernel's
	// ephemeral range a client connection's source port can take a server's port before the
	// server binds it, hence a default above it.
	PortRange string `toml:"port_range"`
}

// GPU is the [gpu] section: NVIDIA GPUs for user servers. It has the keys of the gpu package's
// Config, which the wiring translates it to; this package does not import gpu, because the
// HTTP surfaces that read the configuration must not depend on a concern (agent/layout_test.go).
type GPU struct {
	// Enabled offers the host's GPUs to servers; a host without the NVIDIA driver offers none.
	Enabled bool `toml:"enabled"`
	// Queue makes a spawn that finds no GPU free wait in line for one instead of failing.
	Queue bool `toml:"queue"`
	// Quota is how many GPUs (or MIG devices) the members of a group may hold at once over all
	// their servers, e.g. { students = 1, staff = 4 }; a user in several gets the largest.
	Quota map[string]int `toml:"quota"`
	// DefaultQuota is the quota of users in none of the Quota groups; 0 gives them none.
	DefaultQuota int `toml:"default_quota"`
}

// NFS is the [nfs] section: each user's home mounted from an NFS server (as a systemd mount unit)
// before their server starts, and unmounted a while after the last of their servers stops.
type NFS struct {
	Enabled bool `toml:"enabled"`
	// Server is the NFS server's host name or address; JUPYTER_NFS_IP in the hub's environment
	// overrides it.
	Server string `toml:"server"`
	// Export is the directory on the server that holds the homes; JUPYTER_NFS_PATH in the hub's
	// environment overrides it.
	Export string `toml:"export"`
	// What is what to mount for a user: {SERVER}, {EXPORT}, {USERNAME} and {UID} are replaced.
	What string `toml:"what"`
	// Where is the mount point: {USERNAME}, {UID} and {HOME} (the account's home) are replaced.
	Where string `toml:"where"`
	// Options are the mount options (mount.nfs4's -o).
	Options string `toml:"options"`
	// MountTimeout bounds mounting a home, and then checking the user can use it, each.
	MountTimeout Duration `toml:"mount_timeout"`
	// UnmountAfter is how long a home stays mounted after the user's last server stopped.
	UnmountAfter Duration `toml:"unmount_after"`
}

// Environment variables of the seed setup that override keys when set (non-empty) in the hub's
// environment; ApplyEnv applies them, Load calls it.
const (
	EnvNFSServer = "JUPYTER_NFS_IP"   // nfs.server
	EnvNFSExport = "JUPYTER_NFS_PATH" // nfs.export
)

// ApplyEnv overrides keys with the seed setup's environment variables (EnvNFSServer, ...) that
// lookup finds set and non-empty; an empty variable leaves the file's value.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	if v, ok := lookup(EnvNFSServer); ok && v != "" {
		c.NFS.Server = v
	}
	if v, ok := lookup(EnvNFSExport); ok && v != "" {
		c.NFS.Export = v
	}
	c.applyProfileEnv(lookup) // JUPYTER_PROFILE_<NAME>_ENABLED
	c.Vault.applyEnv(lookup)
	c.Cull.applyEnv(lookup)
}

// Default returns the configuration an empty file produces.
func Default() Config {
	return Config{
		Hub: Hub{
			Listen:       "127.0.0.1:8000",
			BaseURL:      "/",
			DataDir:      "/var/lib/jupyterhub-go",
			ProxySocket:  "/run/jupyterhub-go.sock",
			CookieMaxAge: Duration(14 * 24 * time.Hour),
			LogLevel:     "info",
			MaxBodyBytes: 1 << 20,
			BodyTimeout:  Duration(30 * time.Second),

			APIPageDefaultLimit: 50,
			APIPageMaxLimit:     200,
		},
		Auth: Auth{
			Method:            "pam",
			ManageGroups:      true,
			MaxFailedLogins:   5,
			FailedLoginWindow: Duration(10 * time.Minute),
			PAM:               PAM{Service: "jupyterhub-go", ConfDir: "/etc/pam.d", MinUID: 1000},
			OIDC: OIDC{
				ClientID:         "jupyterhub",
				ClientSecretFile: "/etc/jupyterhub-go/oidc-client-secret",
				Scopes:           []string{"openid", "profile", "email"},
				UsernameClaim:    "preferred_username",
				GroupsClaims:     []string{"groups"},
				RefreshAge:       Duration(5 * time.Minute),
				RefreshBefore:    Duration(time.Minute),
				OnLostAccess:     "stop",
			},
		},
		Spawner: Spawner{
			Cmd:              []string{"/usr/bin/jupyterhub-singleuser"},
			EnvKeep:          []string{"LANG", "LC_ALL", "JUPYTERHUB_SINGLEUSER_APP"},
			Path:             "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			MemoryMax:        Size(2 << 30),
			CPUQuota:         Percent(200),
			TasksMax:         512,
			Slice:            "jupyterhub-users.slice",
			PrivateTmp:       true,
			NoNewPrivileges:  true,
			ProtectSystem:    "full",
			PrivateHomes:     true,
			UMask:            "0077",
			UnitPrefix:       "jupyter",
			StartTimeout:     Duration(120 * time.Second),
			SlowSpawnTimeout: Duration(10 * time.Second),
			StopTimeout:      Duration(30 * time.Second),
			PortRange:        "61000-65535", // above Linux's ephemeral ports (contrib/config.example.toml)
		},
		// As gpu.DefaultConfig: GPUs offered where there are any, one per user, no waiting.
		GPU:   GPU{Enabled: true, DefaultQuota: 1},
		Vault: defaultVault(),
		NFS: NFS{
			What:    "{SERVER}:{EXPORT}/{USERNAME}",
			Where:   "{HOME}",
			Options: "rw,hard,nosuid,nodev,timeo=600",
			// A mount that has not finished in this time will not: mount.nfs4 would retry for two
			// minutes while the user watches a spinner.
			MountTimeout: Duration(30 * time.Second),
			UnmountAfter: Duration(time.Minute),
		},
		Cull: defaultCull(),
	}
}

// Load reads the file at path over the defaults, then applies the environment's overrides
// (ApplyEnv). A missing file is an error only if mustExist.
func Load(path string, mustExist bool) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !mustExist {
		cfg.ApplyEnv(os.LookupEnv)
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := Parse(data, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	cfg.ApplyEnv(os.LookupEnv)
	return cfg, nil
}

// Parse decodes TOML into cfg, which should hold the defaults. Unknown keys are errors.
func Parse(data []byte, cfg *Config) error {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return &lineError{perr}
		}
		return err
	}
	var keys []string
	for _, k := range md.Undecoded() {
		keys = append(keys, k.String())
	}
	// The decoder also fills a field from a key that differs from its name only in case, and
	// from whichever of "memory_max" and "Memory_Max" it meets last, at random.
	for _, k := range md.Keys() {
		if !knownKey(reflect.TypeFor[Config](), k) && !slices.Contains(keys, k.String()) {
			keys = append(keys, k.String())
		}
	}
	if len(keys) > 0 {
		return &unknownKeys{keys}
	}
	// The decoder leaves a map as it was when the file gives it something other than a table, and
	// wraps a negative integer into an unsigned field; both would run with what the file did not say.
	for _, k := range [][]string{{"spawner", "env"}, {"auth", "oidc", "auth_params"}} {
		if typ := md.Type(k...); md.IsDefined(k...) && typ != "Hash" && typ != "" {
			return fmt.Errorf("%s: must be a table such as { NAME = \"value\" }", strings.Join(k, "."))
		}
	}
	if err := checkMetricsKeys(md); err != nil {
		return err
	}
	for _, k := range md.Keys() {
		if k.String() == "profile.env" && md.Type(k...) != "Hash" {
			return errors.New("profile.env: must be a table such as { NAME = \"value\" }")
		}
	}
	if md.IsDefined("spawner", "tasks_max") && cfg.Spawner.TasksMax > math.MaxInt64 {
		return errors.New("spawner.tasks_max: must not be negative (0 leaves systemd's default)")
	}
	return nil
}

// knownKey reports whether every part of k is the exact toml name of a field; anything goes below
// a map (spawner.env, auth.oidc.auth_params).
func knownKey(t reflect.Type, k toml.Key) bool {
	for _, part := range k {
		if t.Kind() == reflect.Slice { // an array of tables, such as [[role]]
			t = t.Elem()
		}
		if t.Kind() == reflect.Map {
			return true
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		var next reflect.Type
		for i := 0; i < t.NumField() && next == nil; i++ {
			if name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); name == part {
				next = t.Field(i).Type
			}
		}
		if next == nil {
			return false
		}
		t = next
	}
	return true
}

// Validate checks the values and returns every problem found, each naming its key and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if _, _, err := net.SplitHostPort(c.Hub.Listen); err != nil {
		bad("hub.listen", "%q is not host:port (e.g. \"127.0.0.1:8000\")", c.Hub.Listen)
	}
	if !strings.HasPrefix(c.Hub.BaseURL, "/") || !strings.HasSuffix(c.Hub.BaseURL, "/") {
		bad("hub.base_url", "%q must start and end with \"/\" (e.g. \"/\" or \"/jupyter/\")", c.Hub.BaseURL)
	}
	if c.Hub.SubdomainHost != "" {
		if u, err := url.Parse(c.Hub.SubdomainHost); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			bad("hub.subdomain_host", "%q must be a scheme and host without a path, such as \"https://jupyter.example.org\"", c.Hub.SubdomainHost)
		}
	}
	if c.Hub.PublicURL != "" {
		if u, err := url.Parse(c.Hub.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("hub.public_url", "%q must be an absolute http(s) URL such as \"https://jupyter.example.org\"", c.Hub.PublicURL)
		}
	}
	if c.Hub.APIURL != "" {
		if u, err := url.Parse(c.Hub.APIURL); err != nil || u.Scheme == "" || u.Host == "" {
			bad("hub.api_url", "%q must be an absolute URL such as \"http://127.0.0.1:8000/hub/api\", or empty", c.Hub.APIURL)
		}
	}
	if !filepath.IsAbs(c.Hub.DataDir) {
		bad("hub.data_dir", "%q must be an absolute path", c.Hub.DataDir)
	}
	if c.Hub.ProxySocket != "" && !filepath.IsAbs(c.Hub.ProxySocket) {
		bad("hub.proxy_socket", "%q must be an absolute path (e.g. \"/run/jupyterhub-go.sock\"), or empty for TCP only", c.Hub.ProxySocket)
	}
	for _, p := range c.Hub.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad("hub.trusted_proxies", "%q is not a network in CIDR form (e.g. \"127.0.0.1/32\")", p)
		}
	}
	c.Hub.validateNamedServers(bad)
	if c.Hub.CookieMaxAge <= 0 {
		bad("hub.cookie_max_age", "must be positive (e.g. \"336h\")")
	}
	switch c.Hub.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("hub.log_level", "%q is not one of debug, info, warn, error", c.Hub.LogLevel)
	}
	c.Hub.validatePaging(bad)
	if c.Auth.MaxFailedLogins < 1 {
		bad("auth.max_failed_logins", "%d: must be at least 1 (default 5)", c.Auth.MaxFailedLogins)
	}
	if c.Auth.FailedLoginWindow.D() < time.Second {
		bad("auth.failed_login_window", "%s is too short to slow anyone down; use e.g. \"10m\"", c.Auth.FailedLoginWindow.D())
	}
	if c.Hub.BodyTimeout.D() < time.Second {
		bad("hub.body_timeout", "%s is too short for a slow client to send a form; use at least \"1s\" (default \"30s\")", c.Hub.BodyTimeout.D())
	}
	if c.Hub.MaxBodyBytes < 1024 {
		bad("hub.max_body_bytes", "%d is too small; use at least 1024", c.Hub.MaxBodyBytes)
	}

	switch c.Auth.Method {
	case "pam":
		if c.Auth.PAM.Service == "" || strings.ContainsRune(c.Auth.PAM.Service, '/') {
			bad("auth.pam.service", "%q must be a PAM service name such as \"jupyterhub-go\"", c.Auth.PAM.Service)
		}
		if c.Auth.PAM.MinUID < 0 {
			bad("auth.pam.min_uid", "must not be negative")
		}
	case "oidc":
		o := c.Auth.OIDC
		if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("auth.oidc.issuer", "%q must be the provider's issuer URL, e.g. \"https://sso.example.org/realms/main\"", o.Issuer)
		}
		if o.ClientID == "" {
			bad("auth.oidc.client_id", "must name the client registered at the provider")
		}
		if !filepath.IsAbs(o.ClientSecretFile) {
			bad("auth.oidc.client_secret_file", "%q must be an absolute path to a file holding the client secret", o.ClientSecretFile)
		}
		if o.RedirectURL == "" && c.Hub.PublicURL == "" {
			bad("auth.oidc.redirect_url", "set it (e.g. \"https://jupyter.example.org/hub/oauth_callback\"), or set hub.public_url to derive it")
		}
		if o.UsernameClaim == "" {
			bad("auth.oidc.username_claim", "must name a claim, e.g. \"preferred_username\"")
		}
		if o.RefreshAge < 0 {
			bad("auth.oidc.refresh_age", "must not be negative: use e.g. \"5m\", or \"0\" to refresh logins only before spawns")
		}
		if o.OnLostAccess != "stop" && o.OnLostAccess != "keep" {
			bad("auth.oidc.on_lost_access", "%q is not \"stop\" (stop the servers of a user who lost access) or \"keep\" (leave them running)", o.OnLostAccess)
		}
	default:
		bad("auth.method", "%q is not supported; use \"pam\" or \"oidc\"", c.Auth.Method)
	}
	for _, u := range append(append([]string{}, c.Auth.AdminUsers...), c.Auth.AllowedUsers...) {
		if err := ValidUsername(u); err != nil {
			bad("auth.admin_users/allowed_users", "%v", err)
		}
	}

	s := c.Spawner
	if len(s.Cmd) == 0 || !filepath.IsAbs(s.Cmd[0]) {
		bad("spawner.cmd", "%q must be a list whose first item is an absolute path, e.g. [\"/usr/bin/jupyterhub-singleuser\"]", s.Cmd)
	}
	for k := range s.Env {
		if !envName.MatchString(k) {
			bad("spawner.env", "%q is not a valid environment variable name", k)
		}
	}
	if s.Slice != "" && !strings.HasSuffix(s.Slice, ".slice") {
		bad("spawner.slice", "%q must end in \".slice\" (or be empty for systemd's default)", s.Slice)
	}
	if s.UMask != "" {
		if m, err := strconv.ParseUint(s.UMask, 8, 32); err != nil || m > 0o777 {
			bad("spawner.umask", "%q is not an octal umask; use e.g. \"0077\" (private files) or \"0022\" (readable by all)", s.UMask)
		}
	}
	switch s.ProtectSystem {
	case "", "true", "full", "strict":
	default:
		bad("spawner.protect_system", "%q is not one of \"\", \"true\", \"full\", \"strict\"", s.ProtectSystem)
	}
	if len(s.UnitPrefix) > 64 || !unitPrefix.MatchString(s.UnitPrefix) {
		bad("spawner.unit_prefix", "%q must be letters, digits, '_' or '-' (e.g. \"jupyter\")", s.UnitPrefix)
	}
	if s.StartTimeout <= 0 || s.SlowSpawnTimeout <= 0 || s.StopTimeout <= 0 {
		bad("spawner.start_timeout/slow_spawn_timeout/stop_timeout", "must be positive durations such as \"120s\"")
	}
	if _, _, err := c.Spawner.Ports(); err != nil {
		bad("spawner.port_range", "%v", err)
	}
	if c.NFS.Enabled {
		c.NFS.validate(c.Spawner.StartTimeout.D(), bad)
	}
	if c.Vault.Enabled {
		c.Vault.validate(bad)
	}

	seen := map[string]bool{}
	for i, r := range c.Roles {
		key := fmt.Sprintf("role[%d]", i)
		if r.Name != "" {
			key = fmt.Sprintf("role[%d] (%q)", i, r.Name)
		}
		switch {
		case defaultRoles[r.Name]:
			bad(key+".name", "%q is one of JupyterHub's default roles (user, admin, server, token), which are built in; pick another name", r.Name)
		case len(r.Name) > 255 || !roleName.MatchString(r.Name):
			bad(key+".name", "%q must be 3 to 255 lowercase letters, digits, '-', '_', '~' or '.', starting with a letter and ending with a letter or digit", r.Name)
		case seen[r.Name]:
			bad(key+".name", "%q is defined twice", r.Name)
		}
		seen[r.Name] = true
		for _, sc := range r.Scopes {
			if !scopes.Known(sc) {
				bad(key+".scopes", "%q is not a JupyterHub scope (see the scopes in JupyterHub's RBAC documentation, e.g. \"read:users\", \"admin:groups\" or \"access:servers!group=staff\")", sc)
			}
		}
		for _, u := range r.Users {
			if err := ValidUsername(u); err != nil {
				bad(key+".users", "%v", err)
			}
		}
		for _, g := range r.Groups {
			if g == "" || strings.ContainsFunc(g, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '!' }) {
				bad(key+".groups", "%q is not a group name", g)
			}
		}
	}

	for i, sv := range c.Services {
		key := fmt.Sprintf("service[%d]", i)
		if sv.Name != "" {
			key = fmt.Sprintf("service[%d] (%q)", i, sv.Name)
		}
		if len(sv.Name) > 64 || !serviceName.MatchString(sv.Name) {
			bad(key+".name", "%q must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", sv.Name)
		} else if seen["service:"+sv.Name] {
			bad(key+".name", "%q is defined twice", sv.Name)
		}
		seen["service:"+sv.Name] = true
		if sv.APITokenFile != "" && !filepath.IsAbs(sv.APITokenFile) {
			bad(key+".api_token_file", "%q must be an absolute path to a file (mode 0600) holding the service's token", sv.APITokenFile)
		}
		for _, r := range sv.Roles {
			if r != "admin" && !slices.ContainsFunc(c.Roles, func(x Role) bool { return x.Name == r }) {
				bad(key+".roles", "%q is neither \"admin\" nor the name of a [[role]]", r)
			}
		}
		if sv.URL != "" {
			if u, err := url.Parse(sv.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				bad(key+".url", "%q must be the service's base URL, such as \"http://127.0.0.1:10101\"", sv.URL)
			}
		}
		if (sv.OAuthClientID == "") != (sv.OAuthRedirectURI == "") {
			bad(key+".oauth_client_id/oauth_redirect_uri", "set both to log users in through the hub, or neither")
		}
		if sv.OAuthRedirectURI != "" && !strings.HasPrefix(sv.OAuthRedirectURI, "/") && !strings.HasPrefix(sv.OAuthRedirectURI, "http://") && !strings.HasPrefix(sv.OAuthRedirectURI, "https://") {
			bad(key+".oauth_redirect_uri", "%q must be an absolute URL or path, e.g. \"/services/%s/oauth_callback\"", sv.OAuthRedirectURI, sv.Name)
		}
	}
	// The same checks as gpu.Config.Validate, which the wiring runs too; they are here so that
	// check-config and a hub's start report them with every other problem.
	groups := make([]string, 0, len(c.GPU.Quota))
	for g := range c.GPU.Quota {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		switch n := c.GPU.Quota[g]; {
		case strings.TrimSpace(g) == "":
			bad("gpu.quota", "a group name is empty; name a Unix or Keycloak group, e.g. students = 1")
		case strings.HasPrefix(g, "/"):
			bad(fmt.Sprintf("gpu.quota.%q", g), "write the group without Keycloak's leading \"/\" (%q): groups are compared without it", strings.TrimPrefix(g, "/"))
		case n < 0:
			bad("gpu.quota."+g, "%d: a quota is how many GPUs (or MIG devices) a member may hold at once; use 0 or more (0: none)", n)
		}
	}
	if c.GPU.DefaultQuota < 0 {
		bad("gpu.default_quota", "%d: use 0 or more, the number of GPUs (or MIG devices) a user in none of the gpu.quota groups may hold at once (0: none)", c.GPU.DefaultQuota)
	}
	c.validateProfiles(bad)
	c.Cull.validate(bad)
	c.Cull.checkAgainstTokenMaxTTL(c.Vault.Enabled, c.Vault.MaxTTL.D(), bad)

	return errors.Join(errs...)
}

// defaultRoles are JupyterHub's built-in roles; [[role]] cannot redefine them.
var defaultRoles = map[string]bool{"user": true, "admin": true, "server": true, "token": true}

// OIDCGroup is a configured group name (auth.allowed_groups, auth.admin_groups) as it is compared
// with the groups of an OpenID Connect login: without one leading "/", which the oidc package
// drops from Keycloak's group paths too (oidc.NormalizeGroup). Keycloak's console shows groups as
// paths ("/jupyter-users", "/staff/physics"), so that is what people copy into the file; kept as
// written, such a name would match no one.
func OIDCGroup(name string) string { return strings.TrimPrefix(strings.TrimSpace(name), "/") }

// Notes are remarks on a valid configuration, for check-config: values the hub reads differently
// from how they are written.
func (c *Config) Notes() []string {
	var notes []string
	if c.Auth.Method == "oidc" {
		for _, l := range []struct {
			key    string
			groups []string
		}{{"auth.allowed_groups", c.Auth.AllowedGroups}, {"auth.admin_groups", c.Auth.AdminGroups}} {
			for _, g := range l.groups {
				if n := OIDCGroup(g); n != g {
					notes = append(notes, fmt.Sprintf("%s: %q is compared as %q, the form the identity provider's group paths arrive in", l.key, g, n))
				}
			}
		}
	}
	notes = append(notes, c.Cull.vaultNote(c.Vault.Enabled, c.Vault.MaxTTL.D())...)
	return append(notes, c.Hub.metricsNotes()...)
}

// validate checks [nfs] once it is enabled; the templates are tried with a sample user.
func (n NFS) validate(startTimeout time.Duration, bad func(key, format string, args ...any)) {
	uses := func(tmpl, ph string) bool { return strings.Contains(tmpl, "{"+ph+"}") }
	placeholders := func(key, tmpl string, allowed ...string) bool {
		for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
			if !slices.Contains(allowed, m[1]) {
				bad(key, "%q: unknown placeholder {%s}; use {%s}", tmpl, m[1], strings.Join(allowed, "}, {"))
				return false
			}
		}
		return true
	}
	if placeholders("nfs.what", n.What, "SERVER", "EXPORT", "USERNAME", "UID") {
		if uses(n.What, "SERVER") {
			switch {
			case n.Server == "":
				bad("nfs.server", "set the NFS server's host name or address (or %s in the hub's environment), e.g. \"nas.example.org\"", EnvNFSServer)
			case strings.ContainsAny(n.Server, " \t\n/,"):
				bad("nfs.server", "%q must be a host name or address, e.g. \"nas.example.org\" or \"10.0.0.5\"", n.Server)
			case strings.Contains(n.Server, ":") && !strings.HasPrefix(n.Server, "["):
				bad("nfs.server", "%q: write an IPv6 address in brackets, e.g. \"[2001:db8::5]\"", n.Server)
			}
		}
		if uses(n.What, "EXPORT") && (!filepath.IsAbs(n.Export) || filepath.Clean(n.Export) != n.Export || strings.ContainsAny(n.Export, " \t\n,")) {
			bad("nfs.export", "%q must be the exported directory as an absolute path without a trailing slash (or %s in the hub's environment), e.g. \"/srv/homes\"", n.Export, EnvNFSExport)
		}
		what := strings.NewReplacer("{SERVER}", "nas", "{EXPORT}", "/srv", "{USERNAME}", "alice", "{UID}", "1001").Replace(n.What)
		host, path, ok := strings.Cut(what, ":/")
		if !ok || host == "" || strings.HasPrefix(host, "/") || strings.ContainsAny(what, " \t\n,") || filepath.Clean("/"+path) != "/"+path {
			bad("nfs.what", "%q must make \"host:/path\" (it made %q), e.g. \"{SERVER}:{EXPORT}/{USERNAME}\"", n.What, what)
		}
	}
	if placeholders("nfs.where", n.Where, "USERNAME", "UID", "HOME") {
		where := strings.NewReplacer("{HOME}", "/home/alice", "{USERNAME}", "alice", "{UID}", "1001").Replace(n.Where)
		if !filepath.IsAbs(where) || filepath.Clean(where) != where || where == "/" || strings.ContainsAny(where, " \t\n") {
			bad("nfs.where", "%q must make an absolute path other than / without a trailing slash (it made %q), e.g. \"{HOME}\" or \"/home/{USERNAME}\"", n.Where, where)
		}
	}
	if strings.ContainsAny(n.Options, " \t\n") {
		bad("nfs.options", "%q: separate mount options with commas, not spaces, e.g. \"rw,hard,timeo=600\"", n.Options)
	}
	if n.MountTimeout.D() < time.Second {
		bad("nfs.mount_timeout", "%s is too short for any mount; use e.g. \"30s\"", n.MountTimeout.D())
	} else if n.MountTimeout.D() >= startTimeout/2 {
		bad("nfs.mount_timeout", "%s: mounting and then checking the home may take this long each, which leaves the server no time within spawner.start_timeout (%s); use less than half of it, or raise spawner.start_timeout", n.MountTimeout.D(), startTimeout)
	}
	if n.UnmountAfter < 0 {
		bad("nfs.unmount_after", "must not be negative; \"0s\" unmounts as soon as the user's last server stops")
	}
}

// OIDCRedirectURL is the callback URL the provider sends browsers back to.
func (c *Config) OIDCRedirectURL() string {
	if c.Auth.OIDC.RedirectURL != "" {
		return c.Auth.OIDC.RedirectURL
	}
	return strings.TrimSuffix(c.Hub.PublicURL, "/") + c.Hub.BaseURL + "hub/oauth_callback"
}

// OIDCPostLogoutURL is where the provider sends browsers after logout ("" if unknown).
func (c *Config) OIDCPostLogoutURL() string {
	if c.Auth.OIDC.PostLogoutRedirectURL != "" || c.Hub.PublicURL == "" {
		return c.Auth.OIDC.PostLogoutRedirectURL
	}
	return strings.TrimSuffix(c.Hub.PublicURL, "/") + c.Hub.BaseURL + "hub/login"
}

// Ports returns the low and high end of PortRange.
func (s Spawner) Ports() (int, int, error) {
	lo, hi, ok := strings.Cut(s.PortRange, "-")
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || l < 1024 || h > 65535 || l >= h {
		return 0, 0, fmt.Errorf("%q must be \"low-high\" within 1024-65535, e.g. \"61000-65535\"", s.PortRange)
	}
	return l, h, nil
}

// APIURLFor returns the hub API URL user servers should use.
func (c *Config) APIURLFor() string {
	if c.Hub.APIURL != "" {
		return strings.TrimSuffix(c.Hub.APIURL, "/")
	}
	host, port, _ := net.SplitHostPort(c.Hub.Listen)
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + c.Hub.BaseURL + "hub/api"
}

// The names' lengths are checked apart from their patterns (matches of which are ASCII, a byte
// a character): a bounded repeat such as {0,63} compiles to that many copies of its class, and
// these are compiled at every start of the hub, before it can listen (about 1 ms of CPU
// together, several on a loaded host).
var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	unitPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+$`) // at most 64
	// username keeps its bound: agent/scopes' fuzz targets copy this very pattern.
	username    = regexp.MustCompile(`^[a-z_][a-z0-9_.@-]{0,63}$`)
	serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`) // at most 64
	// roleName is JupyterHub's rule for role names (jupyterhub/roles.py): 3 to 255 characters.
	roleName = regexp.MustCompile(`^[a-z][a-z0-9\-_~.]+[a-z0-9]$`)
	// placeholder is a {NAME} in the nfs.what and nfs.where templates.
	placeholder = regexp.MustCompile(`\{([^{}]*)\}`)
)

// ValidUsername reports whether name can be a hub user. Hub users are Unix accounts, so the rule is
// the portable Unix one (lowercase, no '/', no leading '-' or '.'), which also keeps names safe in
// URLs, unit names and file paths.
func ValidUsername(name string) error {
	if !username.MatchString(name) {
		return fmt.Errorf("invalid username %q: use lowercase letters, digits, '_', '.', '@' or '-', starting with a letter or '_', at most 64 characters", name)
	}
	return nil
}

// Duration is a time.Duration written in TOML as a string such as "90s" or "14d".
type Duration time.Duration

// UnmarshalText accepts Go durations plus a "d" suffix for days.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		v := n * float64(24*time.Hour)
		// Also refuses NaN, and what does not fit a time.Duration (Go leaves that conversion to the CPU).
		if err != nil || !(v >= math.MinInt64 && v < math.MaxInt64) {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(v)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use e.g. \"30s\", \"10m\", \"2h\" or \"14d\"", s)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as "2G", "512M", "0" (no limit) or a plain number.
type Size uint64

// UnmarshalText parses K, M, G, T suffixes as powers of 1024, as systemd does.
func (s *Size) UnmarshalText(b []byte) error {
	str := strings.ToUpper(strings.TrimSpace(string(b)))
	mult := uint64(1)
	for i, suf := range []string{"K", "M", "G", "T"} {
		if num, ok := strings.CutSuffix(str, suf); ok {
			str, mult = num, 1<<(10*(i+1))
			break
		}
	}
	n, err := strconv.ParseFloat(str, 64)
	v := n * float64(mult)
	// Also refuses NaN and Inf, and sizes that do not fit a uint64 (Go leaves that conversion to the CPU).
	if err != nil || !(v >= 0 && v < 1<<64) {
		return fmt.Errorf("invalid size %q: use e.g. \"2G\", \"512M\", or \"0\" for no limit", string(b))
	}
	*s = Size(v)
	return nil
}

// Percent is a CPU quota written as "200%" (two CPUs) or "0" for no limit.
type Percent float64

// UnmarshalText parses "150%" or a bare number of percent.
func (p *Percent) UnmarshalText(b []byte) error {
	str := strings.TrimSuffix(strings.TrimSpace(string(b)), "%")
	n, err := strconv.ParseFloat(str, 64)
	// Also refuses NaN and Inf, which no unit can start with, and quotas whose µs per second
	// (the unit's CPUQuotaPerSecUSec) do not fit a uint64.
	if err != nil || !(n >= 0 && n*10000 < 1<<64) {
		return fmt.Errorf("invalid CPU quota %q: use e.g. \"200%%\" for two CPUs, or \"0\" for no limit", string(b))
	}
	*p = Percent(n)
	return nil
}

// unknownKeys is a file with keys the configuration does not have. The rest of the file has been
// read, so Check can go on and look at its values too.
type unknownKeys struct{ keys []string }

func (e *unknownKeys) Error() string {
	return fmt.Sprintf("unknown key(s) %s: check the spelling against the documented keys in %s", strings.Join(e.keys, ", "), ExamplePath)
}

// lineError is a TOML error at one line of the file (a syntax error, or a value of the wrong kind).
type lineError struct{ toml.ParseError }

func (e *lineError) Error() string {
	if e.LastKey != "" {
		return fmt.Sprintf("line %d: %s: %s", e.Position.Line, e.LastKey, e.Message)
	}
	return fmt.Sprintf("line %d: %s", e.Position.Line, e.Message)
}
