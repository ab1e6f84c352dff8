package nfs

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	v := Vars{Server: "nas", Export: "/srv/homes", User: "alice", UID: 1001, Home: "/home/alice"}
	for tmpl, want := range map[string]string{
		"{SERVER}:{EXPORT}/{USERNAME}":     "nas:/srv/homes/alice",
		"{SERVER}:/export/{UID}":           "nas:/export/1001",
		"{HOME}":                           "/home/alice",
		"/nfs/{USERNAME}":                  "/nfs/alice",
		"{SERVER}:{EXPORT}/{USERNAME}/{X}": "nas:/srv/homes/alice/{X}", // config refuses {X}; Expand leaves it
	} {
		if got := Expand(tmpl, v); got != want {
			t.Errorf("Expand(%q) = %q, want %q", tmpl, got, want)
		}
	}
}

// The names must be systemd's own: a transient mount unit is refused under any other name. The
// expected values are what `systemd-escape --path --suffix=mount` prints.
func TestMountUnitName(t *testing.T) {
	for where, want := range map[string]string{
		"/home/alice":           "home-alice.mount",
		"/home/a-b":             `home-a\x2db.mount`,
		"/srv/nfs/homes/x.y":    "srv-nfs-homes-x.y.mount",
		"/home/with space":      `home-with\x20space.mount`,
		"/home/ä":               `home-\xc3\xa4.mount`,
		"/home/.hidden":         "home-.hidden.mount",
		"/home/a_b:c@example":   `home-a_b:c\x40example.mount`,
		"/nfs/home/alice.smith": "nfs-home-alice.smith.mount",
	} {
		got, err := MountUnitName(where)
		if err != nil || got != want {
			t.Errorf("MountUnitName(%q) = %q, %v; want %q", where, got, err, want)
		}
	}
	for _, bad := range []string{"", "home/alice", "/home/alice/", "/home//alice", "/home/../etc", "/", "/home/a\nb", "/" + strings.Repeat("x", 300)} {
		if got, err := MountUnitName(bad); err == nil {
			t.Errorf("MountUnitName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestSplitWhatAndProbeAddr(t *testing.T) {
	for what, want := range map[string][2]string{
		"nas:/srv/homes/alice":   {"nas", "/srv/homes/alice"},
		"10.0.0.5:/export":       {"10.0.0.5", "/export"},
		"[2001:db8::5]:/export":  {"2001:db8::5", "/export"},
		"nas.example.org:/a:b/c": {"nas.example.org", "/a:b/c"},
	} {
		host, path, ok := splitWhat(what)
		if !ok || host != want[0] || path != want[1] {
			t.Errorf("splitWhat(%q) = %q %q %v", what, host, path, ok)
		}
	}
	for _, bad := range []string{"nas", ":/x", "nas:relative", "[::1]/x", "/srv/homes"} {
		if h, p, ok := splitWhat(bad); ok {
			t.Errorf("splitWhat(%q) = %q %q, want not ok", bad, h, p)
		}
	}
	for c, want := range map[[2]string]string{
		{"nas:/x", "rw,hard"}:          "nas:2049",
		{"nas:/x", "rw,port=20490"}:    "nas:20490",
		{"[2001:db8::5]:/x", ""}:       "[2001:db8::5]:2049",
		{"nas:/x", "proto=rdma"}:       "",
		{"nas:/x", "proto=tcp,port=0"}: "nas:2049",
		{"nas", "rw"}:                  "",
	} {
		if got := probeAddr(c[0], c[1]); got != want {
			t.Errorf("probeAddr(%q, %q) = %q, want %q", c[0], c[1], got, want)
		}
	}
}
