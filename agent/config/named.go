package config

// Named servers ([hub] allow_named_servers, named_server_limit_per_user) let a user run more
// than one server at a time, each at /user/<name>/<server>/ with its own unit, as JupyterHub's
// options of the same names do. Off by default, as in JupyterHub; a limit of 0 means none.

// validateNamedServers checks the two [hub] keys of named servers.
func (h Hub) validateNamedServers(bad func(key, format string, args ...any)) {
	if h.NamedServerLimitPerUser < 0 {
		bad("hub.named_server_limit_per_user", "must be 0 (no limit) or a positive number of named servers per user, not %d", h.NamedServerLimitPerUser)
	}
}
