package config

import (
	"fmt"
	"strings"
	"unicode"
)

// Named servers ([hub] allow_named_servers, named_server_limit_per_user) let a user run more
// than one server at a time, each at /user/<name>/<server>/ with its own unit, as JupyterHub's
// options of the same names do. Off by default, as in JupyterHub; a limit of 0 means none.

// validateNamedServers checks the two [hub] keys of named servers.
func (h Hub) validateNamedServers(bad func(key, format string, args ...any)) {
	if h.NamedServerLimitPerUser < 0 {
		bad("hub.named_server_limit_per_user", "must be 0 (no limit) or a positive number of named servers per user, not %d", h.NamedServerLimitPerUser)
	}
}

// maxServerName keeps a server's name short enough for its unit name, URL and OAuth client id.
const maxServerName = 64

// ValidServerName checks a named server's name. JupyterHub refuses only '/', because the name is
// a path segment of the server's URL; this hub also puts it in a unit name, a cookie path and an
// OAuth redirect URI, so it takes the characters that need no escaping in any of them: letters,
// digits and "-", "_", "." and "~", not starting with "." (no "." or ".." segments).
func ValidServerName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a named server needs a name")
	case strings.Contains(name, "/"):
		return fmt.Errorf("invalid server name %q: it may not contain '/'", name)
	case len(name) > maxServerName:
		return fmt.Errorf("invalid server name %q: longer than %d characters", name, maxServerName)
	case name[0] == '.':
		return fmt.Errorf("invalid server name %q: it may not start with '.'", name)
	}
	for _, r := range name {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_.~", r)) {
			return fmt.Errorf("invalid server name %q: use letters, digits, '-', '_', '.' and '~'", name)
		}
	}
	return nil
}
