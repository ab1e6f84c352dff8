package spawner

import (
	"strconv"
	"strings"
	"testing"
)

// unescapePart undoes escapePart the way systemd-escape --unescape does: every
// \xNN becomes its byte. escapePart always escapes '\', so this is exact.
func unescapePart(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) || s[i+1] != 'x' {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), true
}

// isUnitChars reports whether u holds only what systemd allows in a unit name
// that is not a template instance: [A-Za-z0-9:_.\-].
func isUnitChars(u string) bool {
	for i := 0; i < len(u); i++ {
		if !isUnitSafe(u[i]) && u[i] != '-' && u[i] != '\\' {
			return false
		}
	}
	return true
}

// unitNameSeeds are the names the unit tests use, plus inputs that reach the
// truncation path and the hash marker.
func unitNameSeeds() [][3]string {
	long := strings.Repeat("a", 300)
	return [][3]string{
		{"jupyter", "alice", ""},
		{"", "alice", ""},
		{"jupyter", "alice", "x"},
		{"jupyter", "alice-x", ""},
		{"jupyter", ".hidden", ".srv"},
		{"jupyter", "jörg", ""},
		{"jupyter", "a b/c", ""},
		{"jupyter", `x\y`, ""},
		{"jupyter-gpu", "bob", "big one"},
		{"jupyter", "", ""},
		{"jupyter", "alice@corp", ""},
		{"jupyter", long, ""},
		{"jupyter", long[:229], ""},
		{"jupyter", strings.Repeat("-", 200), ""},
		{"jupyter", strings.Repeat("a", 226) + "-", "x"},
		{"jupyter", "a", "-." + strings.Repeat("0", 16)},
		{"a-.b", "c", ""},
		{".x", "u", ""},
		{`p\x`, "u", ""},
		{strings.Repeat("p", 300), "u", ""},
	}
}

// FuzzUnitName: whatever it is given, UnitName returns a valid systemd service
// name that starts with the (valid) prefix, and the escaping is reversible.
func FuzzUnitName(f *testing.F) {
	for _, s := range unitNameSeeds() {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, prefix, user, server string) {
		n := UnitName(prefix, user, server)
		if len(n) > maxUnitName || !strings.HasSuffix(n, ".service") || !isUnitChars(n) || !validUnitName(n) {
			t.Fatalf("UnitName(%q, %q, %q) = %q: not a valid unit name", prefix, user, server, n)
		}
		if n != UnitName(prefix, user, server) {
			t.Fatalf("UnitName(%q, %q, %q) is not deterministic", prefix, user, server)
		}
		if prefix == "" {
			if n != UnitName(defaultPrefix, user, server) {
				t.Fatalf("an empty prefix is not %q: %q", defaultPrefix, n)
			}
			prefix = defaultPrefix
		}
		if validPrefix(prefix) && !strings.HasPrefix(n, prefix+"-") {
			t.Fatalf("UnitName(%q, %q, %q) = %q lacks the prefix", prefix, user, server, n)
		}
		for _, s := range []string{user, server} {
			e := escapePart(s)
			if !isUnitChars(e) || strings.Contains(e, "-") || strings.HasPrefix(e, ".") {
				t.Fatalf("escapePart(%q) = %q: a '-', a leading '.' or a byte systemd refuses", s, e)
			}
			if back, ok := unescapePart(e); !ok || back != s {
				t.Fatalf("escapePart(%q) = %q does not unescape back (got %q)", s, e, back)
			}
		}
		// A name that fits is exactly prefix-user[-server].service; one that does not is
		// the start of that, cut at an escape boundary, then the hash marker, 16 hex
		// digits and .service.
		full := escapePrefix(prefix) + "-" + escapePart(user)
		if server != "" {
			full += "-" + escapePart(server)
		}
		if len(full)+len(".service") <= maxUnitName {
			if n != full+".service" {
				t.Fatalf("UnitName(%q, %q, %q) = %q, want %q", prefix, user, server, n, full+".service")
			}
			return
		}
		base := strings.TrimSuffix(n, ".service")
		i := strings.LastIndex(base, hashMarker)
		if i < 0 || len(base)-i != len(hashMarker)+16 || strings.Trim(base[i+len(hashMarker):], "0123456789abcdef") != "" {
			t.Fatalf("truncated UnitName(%q, %q, %q) = %q lacks the hash", prefix, user, server, n)
		}
		cut := base[:i]
		if !strings.HasPrefix(full, cut) || len(cut) < maxUnitName-len(".service")-len(hashMarker)-16-3 {
			t.Fatalf("truncated UnitName(%q, %q, %q) = %q does not keep the start of %q", prefix, user, server, n, full)
		}
		if j := strings.LastIndexByte(cut, '\\'); j >= 0 && j > len(cut)-4 {
			t.Fatalf("truncated UnitName(%q, %q, %q) = %q ends in half an escape", prefix, user, server, n)
		}
	})
}

// FuzzUnitNameCollision: two different (user, server) pairs under one prefix
// never share a unit name, truncated or not.
func FuzzUnitNameCollision(f *testing.F) {
	long := strings.Repeat("a", 300)
	truncated := UnitName("jupyter", long, "")
	i := strings.LastIndex(truncated, hashMarker)
	hash := strings.TrimSuffix(truncated[i+len(hashMarker):], ".service")
	cut := truncated[len("jupyter-"):i]
	pairs := [][4]string{
		{"alice-x", "", "alice", "x"},
		{"alice", "-x", "alice-", "x"},
		{"a/b", "", "a", "b"},
		{"a-b", "c", "a", "b-c"},
		{".x", "", `\x2ex`, ""},
		{"", "x", "x", ""},
		{"", "", "-", ""},
		{long, "", long + "b", ""},
		{long, "x", long, "y"},
		{long[:229], "", long[:230], ""},
		{long, "", cut, "." + hash},
		{long, "", cut, hash},
		{long, "", cut + "-", hash},
		{"alice", "", "alice", ""},
	}
	for _, p := range pairs {
		f.Add("jupyter", p[0], p[1], p[2], p[3])
	}
	f.Add("a-.b", "c", "", "c", "")
	f.Fuzz(func(t *testing.T, prefix, u1, s1, u2, s2 string) {
		n1, n2 := UnitName(prefix, u1, s1), UnitName(prefix, u2, s2)
		if (u1 != u2 || s1 != s2) && n1 == n2 {
			t.Fatalf("UnitName(%q, %q, %q) = UnitName(%q, %q, %q) = %q", prefix, u1, s1, prefix, u2, s2, n1)
		}
		if u1 == u2 && s1 == s2 && n1 != n2 {
			t.Fatalf("one pair, two names: %q, %q", n1, n2)
		}
	})
}
