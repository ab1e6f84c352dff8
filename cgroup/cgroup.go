// Package cgroup reads what a systemd unit uses now from its cgroup v2 files, as node_exporter
// and cAdvisor do: memory.current (bytes charged to the cgroup, page cache included, which is
// what MemoryMax= limits) and usage_usec in cpu.stat (CPU time of every process that ever ran
// in it). The hub shows these per server on the admin page and in the API; the metrics reuse
// them. Reading needs no privileges and no D-Bus: the files are world-readable.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultRoot is where the unified cgroup hierarchy is mounted on a systemd host.
const DefaultRoot = "/sys/fs/cgroup"

// ErrNoCgroup is a unit without a cgroup: not running, or not known to systemd.
var ErrNoCgroup = errors.New("no such cgroup")

// Reader reads cgroups under one root, the host's /sys/fs/cgroup or a fake tree in tests.
type Reader struct{ root string }

// New reads cgroups under root; "" is DefaultRoot.
func New(root string) *Reader {
	if root == "" {
		root = DefaultRoot
	}
	return &Reader{root: root}
}

// Stats is what a cgroup uses at the moment it was read.
type Stats struct {
	MemoryBytes uint64        // memory.current
	CPU         time.Duration // usage_usec of cpu.stat: CPU time used since the cgroup was made
}

// Read reads the cgroup at path, relative to the root (UnitPath makes one for a unit).
func (r *Reader) Read(path string) (Stats, error) {
	dir := filepath.Join(r.root, filepath.FromSlash(path))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return Stats{}, fmt.Errorf("read cgroup %s: %w", path, ErrNoCgroup)
	}
	var st Stats
	mem, err := os.ReadFile(filepath.Join(dir, "memory.current"))
	if errors.Is(err, fs.ErrNotExist) {
		// The memory controller is not enabled for this cgroup's parent (no unit in the
		// slice asked for MemoryAccounting= or a memory limit): there is nothing to read.
		return st, fmt.Errorf("read cgroup %s: memory.current missing: the memory controller is off for its slice", path)
	}
	if err != nil {
		return st, fmt.Errorf("read cgroup %s: %w", path, err)
	}
	if st.MemoryBytes, err = strconv.ParseUint(string(bytes.TrimSpace(mem)), 10, 64); err != nil {
		return st, fmt.Errorf("read cgroup %s: memory.current: %w", path, err)
	}
	cpu, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return st, fmt.Errorf("read cgroup %s: %w", path, err)
	}
	usec, ok := field(cpu, "usage_usec")
	if !ok {
		return st, fmt.Errorf("read cgroup %s: cpu.stat has no usage_usec", path)
	}
	st.CPU = time.Duration(usec) * time.Microsecond
	return st, nil
}

// Unit reads the cgroup of a unit in a slice ("" is system.slice, where systemd puts a
// service that names none).
func (r *Reader) Unit(slice, unit string) (Stats, error) { return r.Read(UnitPath(slice, unit)) }

// UnitPath is where systemd puts a unit's cgroup: below its slice, and each slice below its
// parents, named by the dashes in its name ("a-b.slice" is "a.slice/a-b.slice").
func UnitPath(slice, unit string) string {
	if slice == "" {
		slice = "system.slice"
	}
	if slice == "-.slice" {
		return unit
	}
	name := strings.TrimSuffix(slice, ".slice")
	var parts []string
	for i := range len(name) {
		if name[i] == '-' {
			parts = append(parts, name[:i]+".slice")
		}
	}
	return strings.Join(append(parts, slice, unit), "/")
}

// field is the value of a "key value" line of a flat-keyed cgroup file such as cpu.stat.
func field(b []byte, key string) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
