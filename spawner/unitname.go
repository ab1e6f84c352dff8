package spawner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxUnitName is systemd's UNIT_NAME_MAX minus the terminating NUL.
const maxUnitName = 255

// hashMarker separates a truncated name from its hash. escapePart never
// emits a '.' right after a '-' (it escapes a leading '.'), so no untruncated
// name can end in "-.<hash>": a user cannot pick a server name that collides
// with another user's truncated name.
const hashMarker = "-."

// UnitName returns the transient service name for a user's server, e.g.
// "jupyter-alice.service" or "jupyter-alice-gpu.service". Each part is escaped
// like systemd-escape does, including '-', so "alice-x" with the default
// server and "alice" with server "x" get different names. Names longer than
// systemd allows are cut and given a hash of the full name, which keeps them
// unique.
func UnitName(prefix, user, server string) string {
	base := escapePrefix(prefix) + "-" + escapePart(user)
	if server != "" {
		base += "-" + escapePart(server)
	}
	const suffix = ".service"
	if len(base)+len(suffix) <= maxUnitName {
		return base + suffix
	}
	sum := sha256.Sum256([]byte(base))
	tag := hashMarker + hex.EncodeToString(sum[:8])
	keep := maxUnitName - len(suffix) - len(tag)
	cut := base[:keep]
	// Do not leave half of a \xNN escape behind; it is valid, but misleading
	// to anyone reading the name.
	if i := strings.LastIndexByte(cut, '\\'); i >= 0 && i > len(cut)-4 {
		cut = cut[:i]
	}
	return cut + tag + suffix
}

// escapePart is systemd-escape(1) without --path: bytes outside
// [A-Za-z0-9:_.] and a leading '.' become \xNN. Unlike systemd-escape it
// turns '/' into \x2f, not '-', which would make "a/b" collide with user "a",
// server "b".
func escapePart(s string) string { return escape(s, false) }

// escapePrefix also keeps '-' (operators write prefixes like "jupyter-gpu").
// Connect rejects prefixes that would need escaping; escaping here only keeps
// UnitName's result a valid unit name whatever it is given.
func escapePrefix(p string) string {
	if p == "" {
		p = defaultPrefix
	}
	return escape(p, true)
}

func escape(s string, keepDash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (isUnitSafe(c) && !(i == 0 && c == '.')) || (keepDash && c == '-') {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, `\x%02x`, c)
	}
	return b.String()
}

func isUnitSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == ':' || c == '_' || c == '.'
}

// validPrefix reports whether p can be used in unit names and in the glob that
// List passes to systemd unchanged.
func validPrefix(p string) bool {
	if p == "" || p[0] == '.' || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if !isUnitSafe(p[i]) && p[i] != '-' {
			return false
		}
	}
	return true
}

// validUnitName checks a name handed to Start/Stop/State before it reaches
// D-Bus or the file system; it accepts what UnitName produces and any other
// plain service name.
func validUnitName(u string) bool {
	if len(u) > maxUnitName || !strings.HasSuffix(u, ".service") || len(u) == len(".service") {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !isUnitSafe(c) && c != '-' && c != '\\' && c != '@' {
			return false
		}
	}
	return true
}
