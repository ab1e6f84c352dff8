package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cull is the [cull] section: the built-in idle culler (agent/cull).
type Cull struct {
	// Enabled runs the culler. On by default: an idle server holds memory and GPUs until someone
	// stops it, and a production hub wants them back (zero-to-jupyterhub turns its culler on by
	// default too, with the same hour).
	Enabled bool `toml:"enabled"`
	// Timeout is how long a server may go without activity before it is stopped.
	Timeout Duration `toml:"timeout"`
	// Every is how often the culler looks at the servers.
	Every Duration `toml:"every"`
	// MaxAge stops a server this long after it started, active or not; 0: no limit.
	// JUPYTERHUB_CULL_MAX_AGE (seconds) overrides it.
	MaxAge Duration `toml:"max_age"`
	// CullAdminServers: admins' servers are culled too.
	CullAdminServers bool `toml:"cull_admin_servers"`
	// CullNamedServers: named servers are culled too, not only default ones.
	CullNamedServers bool `toml:"cull_named_servers"`
	// RemoveUsers deletes users who have no server running and no activity for Timeout (admins
	// only with CullAdminServers), as jupyterhub-idle-culler's --cull-users.
	RemoveUsers bool `toml:"remove_users"`
	// Concurrency bounds how many servers are looked at (their kernels asked) at once.
	Concurrency int `toml:"concurrency"`
	// DryRun only logs what would be culled.
	DryRun bool `toml:"dry_run"`
	// OpenTabsAreActivity counts a browser tab that is merely open (its polling and kernel
	// WebSockets) as activity, as Python JupyterHub does; off, only what a person or a kernel
	// does counts.
	OpenTabsAreActivity bool `toml:"open_tabs_are_activity"`
}

// EnvCullMaxAge is the seeds' variable for cull.max_age, in seconds.
const EnvCullMaxAge = "JUPYTERHUB_CULL_MAX_AGE"

func defaultCull() Cull {
	return Cull{
		Enabled:          true,
		Timeout:          Duration(time.Hour),
		Every:            Duration(5 * time.Minute),
		CullAdminServers: true,
		CullNamedServers: true,
		Concurrency:      10,
	}
}

// applyEnv is the seeds' JUPYTERHUB_CULL_MAX_AGE; a value that is not a number of seconds is
// kept as a duration that validate refuses by name.
func (c *Cull) applyEnv(lookup func(string) (string, bool)) {
	v, ok := lookup(EnvCullMaxAge)
	if !ok || strings.TrimSpace(v) == "" {
		return
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || n < 0 || n > float64(1<<62)/float64(time.Second) {
		c.MaxAge = -1
		return
	}
	c.MaxAge = Duration(n * float64(time.Second))
}

func (c *Cull) validate(bad func(key, format string, args ...any)) {
	if c.MaxAge < 0 {
		bad("cull.max_age", "must be 0 (no limit) or positive, e.g. \"6d\"; %s in the environment, which overrides it, must be a number of seconds", EnvCullMaxAge)
	}
	if !c.Enabled {
		return
	}
	if c.Timeout <= 0 {
		bad("cull.timeout", "must be positive, e.g. \"1h\" (or set cull.enabled = false)")
	}
	if c.Every <= 0 {
		bad("cull.every", "must be positive, e.g. \"5m\"")
	} else if c.Timeout > 0 && c.Every > c.Timeout {
		bad("cull.every", "%s is longer than cull.timeout (%s): servers would stay up to twice the timeout; check at most every cull.timeout", c.Every.D(), c.Timeout.D())
	}
	if c.Concurrency < 1 {
		bad("cull.concurrency", "%d: use 1 or more, how many servers are checked at once", c.Concurrency)
	}
}

// checkAgainstTokenMaxTTL is the rule between [cull] and [vault]: a culler that lets servers live
// as long as their Vault tokens, or longer, leaves them running with a dead token. Validate calls
// it; a hub whose servers have no age limit at all gets a note instead (vaultNotes), because
// refusing would make Vault impossible without a max age that not every site wants.
func (c *Cull) checkAgainstTokenMaxTTL(vaultEnabled bool, maxTTL time.Duration, bad func(key, format string, args ...any)) {
	if !vaultEnabled || maxTTL <= 0 || !c.Enabled || c.MaxAge <= 0 {
		return
	}
	if c.MaxAge.D() >= maxTTL {
		bad("cull.max_age", "%s is not below vault.max_ttl (%s): a server would outlive its Vault token; use less, e.g. %q", c.MaxAge.D(), maxTTL, fmtDays(maxTTL-24*time.Hour))
	}
}

// vaultNote says when servers may outlive their Vault tokens because nothing ends them.
func (c *Cull) vaultNote(vaultEnabled bool, maxTTL time.Duration) []string {
	if !vaultEnabled || maxTTL <= 0 || (c.Enabled && c.MaxAge > 0) {
		return nil
	}
	return []string{fmt.Sprintf("cull.max_age: servers have no age limit, but their Vault tokens end at vault.max_ttl (%s); a server older than that runs on without a working token. Set cull.max_age below it (e.g. %q) to have them stopped first", maxTTL, fmtDays(maxTTL-24*time.Hour))}
}

func fmtDays(d time.Duration) string {
	if d <= 0 {
		return "1h"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
