package nfs

import (
	"os"
	"strings"
	"testing"
)

func readTestMounts(t *testing.T) []Mount {
	t.Helper()
	f, err := os.Open("testdata/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mounts, err := ParseMountInfo(f)
	if err != nil {
		t.Fatal(err)
	}
	return mounts
}

func TestParseMountInfo(t *testing.T) {
	mounts := readTestMounts(t)
	if len(mounts) != 11 {
		t.Fatalf("parsed %d mounts, want 11", len(mounts))
	}
	m, ok := mountAt(mounts, "/home/alice")
	if !ok || m.ID != 60 || m.Parent != 28 || m.FSType != "nfs4" || m.Source != "127.0.0.1:/srv/nfs/homes/alice" ||
		m.Root != "/" || !strings.Contains(m.SuperOptions, "vers=4.2") || !strings.HasPrefix(m.Options, "rw,nosuid") {
		t.Errorf("/home/alice: %+v", m)
	}
	// Octal escapes in paths and sources.
	if m, ok := mountAt(mounts, "/home/with space"); !ok || m.Root != "/srv/scratch" {
		t.Errorf("escaped space: %+v %v", m, ok)
	}
	if m, ok := mountAt(mounts, "/home/tab\tand\\backslash"); !ok || m.Source != "tmp fs" {
		t.Errorf("escaped tab and backslash: %+v %v", m, ok)
	}
	// Two mounts on one point: the later one is what a process sees.
	if m, _ := mountAt(mounts, "/home/carol"); m.Source != "nas:/srv/homes/carol" {
		t.Errorf("stacked mounts: got %s, want the top one", m.Source)
	}
	if _, ok := mountAt(mounts, "/home/bob"); ok {
		t.Error("/home/bob is not a mount point")
	}
	if _, ok := mountAt(mounts, "/home"); ok {
		t.Error("/home is not a mount point (only a parent of some)")
	}
}

func TestAutofsAbove(t *testing.T) {
	mounts := readTestMounts(t)
	for path, want := range map[string]string{
		"/net/nas/home/alice":   "/net",           // indirect map
		"/data/projects":        "/data/projects", // direct map on the home itself
		"/data/projects/alice":  "/data/projects",
		"/network/alice":        "",
		"/home/alice":           "",
		"/data/projectsx/alice": "",
	} {
		m, ok := autofsAbove(mounts, path)
		if (want == "") == ok || (ok && m.Point != want) {
			t.Errorf("autofsAbove(%q) = %q, %v; want %q", path, m.Point, ok, want)
		}
	}
}

func TestParseMountInfoRejectsGarbage(t *testing.T) {
	for _, bad := range []string{
		"22 28 0:21 / /sys rw",                  // no separator
		"x 28 0:21 / /sys rw - sysfs sysfs rw",  // id not a number
		"22 28 0:21 / /sys rw shared:7 - sysfs", // fields missing after the separator
	} {
		if _, err := ParseMountInfo(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	// This host's own table parses, whatever is mounted here.
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		defer f.Close()
		if mounts, err := ParseMountInfo(f); err != nil || len(mounts) == 0 {
			t.Errorf("this host's mountinfo: %d mounts, %v", len(mounts), err)
		}
	}
}
