package nfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of /proc/<pid>/mountinfo (proc(5)).
type Mount struct {
	ID, Parent   int
	Root         string // the directory of the file system that is mounted here
	Point        string // the mount point
	Options      string // per-mount options
	FSType       string // e.g. "nfs4", "autofs"
	Source       string // e.g. "nas:/srv/homes/alice"
	SuperOptions string
}

// ParseMountInfo reads a mountinfo table. Paths come unescaped (the kernel writes a space as
// \040, a tab as \011, a newline as \012 and a backslash as \134).
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		m, err := parseMountLine(line)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// parseMountLine reads "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue":
// six fields, any number of optional fields ended by "-", then three more.
func parseMountLine(line string) (Mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 6 || sep < 0 || len(f) < sep+3 {
		return Mount{}, fmt.Errorf("%q has not the fields of a mountinfo line", line)
	}
	id, err1 := strconv.Atoi(f[0])
	parent, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return Mount{}, fmt.Errorf("%q: mount ids are not numbers", line)
	}
	m := Mount{
		ID: id, Parent: parent,
		Root: unescapeOctal(f[3]), Point: unescapeOctal(f[4]), Options: f[5],
		FSType: unescapeOctal(f[sep+1]), Source: unescapeOctal(f[sep+2]),
	}
	if len(f) > sep+3 {
		m.SuperOptions = f[sep+3]
	}
	return m, nil
}

// unescapeOctal undoes the kernel's \ooo escapes in mountinfo fields.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			n, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// mountAt returns what is mounted on path: the last entry for it, since a later mount on the same
// point hides the earlier ones.
func mountAt(mounts []Mount, path string) (Mount, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].Point == path {
			return mounts[i], true
		}
	}
	return Mount{}, false
}

// autofsAbove returns an autofs mount on path or on one of its parents: autofs mounts the home
// itself when it is first used (an indirect map on /home, or a direct map on the home), so the hub
// must not mount anything there.
func autofsAbove(mounts []Mount, path string) (Mount, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if m.FSType == "autofs" && (m.Point == path || strings.HasPrefix(path, strings.TrimSuffix(m.Point, "/")+"/")) {
			return m, true
		}
	}
	return Mount{}, false
}

// readMountInfo reads systemd's view of the mounts, PID 1's: the hub's own unit may run in a mount
// namespace of its own (PrivateTmp=), and systemd's mount units live in PID 1's.
func readMountInfo() ([]Mount, error) {
	f, err := os.Open("/proc/1/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	defer f.Close()
	return ParseMountInfo(f)
}
