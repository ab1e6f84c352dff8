package spawner

import (
	"os/exec"
	"strings"
	"testing"
)

func TestUnitName(t *testing.T) {
	tests := []struct {
		prefix, user, server, want string
	}{
		{"jupyter", "alice", "", "jupyter-alice.service"},
		{"", "alice", "", "jupyter-alice.service"},
		{"jupyter", "alice", "x", "jupyter-alice-x.service"},
		{"jupyter", "alice-x", "", `jupyter-alice\x2dx.service`},
		{"jupyter", "alice.b_c:d", "", "jupyter-alice.b_c:d.service"},
		{"jupyter", ".hidden", ".srv", `jupyter-\x2ehidden-\x2esrv.service`},
		{"jupyter", "jörg", "", `jupyter-j\xc3\xb6rg.service`},
		{"jupyter", "a b/c", "", `jupyter-a\x20b\x2fc.service`},
		{"jupyter", `x\y`, "", `jupyter-x\x5cy.service`},
		{"jupyter-gpu", "bob", "big one", `jupyter-gpu-bob-big\x20one.service`},
		{"jupyter", "", "", "jupyter-.service"},
		{"jupyter", "alice@corp", "", `jupyter-alice\x40corp.service`},
	}
	for _, tt := range tests {
		if got := UnitName(tt.prefix, tt.user, tt.server); got != tt.want {
			t.Errorf("UnitName(%q, %q, %q) = %q, want %q", tt.prefix, tt.user, tt.server, got, tt.want)
		}
	}
}

func TestUnitNameCollisionFree(t *testing.T) {
	long := strings.Repeat("a", 300)
	pairs := [][2]string{
		{"alice-x", ""}, {"alice", "x"}, {"alice", "-x"}, {"alice-", "x"},
		{"a/b", ""}, {"a", "b"}, {"a-b", "c"}, {"a", "b-c"}, {"alice", ""},
		{".x", ""}, {`\x2ex`, ""}, {"x", ""}, {"", "x"}, {"", ""},
		{long, ""}, {long + "b", ""}, {long, "x"}, {long[:100], long[:100]},
		{long[:250], ""}, {long[:229], ""},
	}
	// The hash marker must not be reachable from an untruncated name: a
	// user picking a server name equal to another user's hash.
	truncated := UnitName("jupyter", long, "")
	i := strings.LastIndex(truncated, hashMarker)
	hash := strings.TrimSuffix(truncated[i+len(hashMarker):], ".service")
	cut := truncated[len("jupyter-"):i]
	pairs = append(pairs, [2]string{cut, "." + hash}, [2]string{cut, hash}, [2]string{cut + "-", hash})

	seen := map[string][2]string{}
	for _, p := range pairs {
		n := UnitName("jupyter", p[0], p[1])
		if !validUnitName(n) || len(n) > maxUnitName {
			t.Errorf("UnitName(%q, %q) = %q: not a valid unit name", p[0], p[1], n)
		}
		if prev, ok := seen[n]; ok {
			t.Errorf("UnitName(%q, %q) = UnitName(%q, %q) = %q", p[0], p[1], prev[0], prev[1], n)
		}
		seen[n] = p
	}
}

func TestUnitNameTruncation(t *testing.T) {
	u := strings.Repeat("-", 200) // every byte becomes 4
	n := UnitName("jupyter", u, "")
	if len(n) > maxUnitName {
		t.Fatalf("len = %d", len(n))
	}
	if !strings.HasSuffix(n, ".service") {
		t.Fatalf("%q lacks .service", n)
	}
	base := strings.TrimSuffix(n, ".service")
	cut := base[:strings.LastIndex(base, hashMarker)]
	if strings.Count(cut, `\`)*4 != len(cut)-len("jupyter-") {
		t.Errorf("truncation split an escape: %q", cut)
	}
	if n != UnitName("jupyter", u, "") {
		t.Error("not deterministic")
	}
}

// TestEscapeMatchesSystemd compares with the real systemd-escape where one is
// installed, for inputs without '/', the one byte we escape differently.
func TestEscapeMatchesSystemd(t *testing.T) {
	if _, err := exec.LookPath("systemd-escape"); err != nil {
		t.Skip("systemd-escape not installed")
	}
	in := []string{"alice", "alice-x", ".hid", "jörg", "a b", `x\y`, "a.b_c:d", "$(x)", "tab\there", "émoji😀"}
	out, err := exec.Command("systemd-escape", append([]string{"--"}, in...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(strings.TrimSpace(string(out)))
	if len(want) != len(in) {
		t.Fatalf("systemd-escape gave %q", out)
	}
	for i, s := range in {
		if got := escapePart(s); got != want[i] {
			t.Errorf("escapePart(%q) = %q, systemd-escape says %q", s, got, want[i])
		}
	}
}

func TestValidPrefix(t *testing.T) {
	for _, p := range []string{"jupyter", "jupyter-gpu", "a.b", "x_y:z"} {
		if !validPrefix(p) {
			t.Errorf("validPrefix(%q) = false", p)
		}
	}
	for _, p := range []string{"", ".x", "a*", "a b", `a\x`, "a/b", "a@b", "a[1]"} {
		if validPrefix(p) {
			t.Errorf("validPrefix(%q) = true", p)
		}
	}
}
