package cgroup

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUnitPathNestsSlicesByTheirDashes(t *testing.T) {
	for _, c := range []struct{ slice, want string }{
		{"jupyterhub-users.slice", "jupyterhub.slice/jupyterhub-users.slice/u.service"},
		{"jupyter.slice", "jupyter.slice/u.service"},
		{"a-b-c.slice", "a.slice/a-b.slice/a-b-c.slice/u.service"},
		{"", "system.slice/u.service"},
		{"-.slice", "u.service"},
	} {
		if got := UnitPath(c.slice, "u.service"); got != c.want {
			t.Errorf("UnitPath(%q) = %q, want %q", c.slice, got, c.want)
		}
	}
}

func TestUnitReadsMemoryCurrentAndCPUUsage(t *testing.T) {
	r := New("testdata/fs")
	st, err := r.Unit("jupyterhub-users.slice", "jupyter-alice.service")
	if err != nil {
		t.Fatal(err)
	}
	if st.MemoryBytes != 150<<20 || st.CPU != 12500*time.Millisecond {
		t.Errorf("got %+v, want 150 MiB and 12.5s", st)
	}
	if st, err := r.Unit("", "jupyter-bob.service"); err != nil || st.MemoryBytes != 4096 || st.CPU != time.Microsecond {
		t.Errorf("bob in system.slice: %+v, %v", st, err)
	}
}

func TestAUnitWithoutACgroupIsErrNoCgroup(t *testing.T) {
	_, err := New("testdata/fs").Unit("jupyterhub-users.slice", "jupyter-gone.service")
	if !errors.Is(err, ErrNoCgroup) {
		t.Errorf("err = %v, want ErrNoCgroup", err)
	}
}

func TestMissingMemoryControllerSaysSo(t *testing.T) {
	_, err := New("testdata/fs").Unit("", "jupyter-nomem.service")
	if err == nil || !strings.Contains(err.Error(), "memory controller") {
		t.Errorf("err = %v, want one naming the memory controller", err)
	}
}

func TestNewDefaultsToTheHostHierarchy(t *testing.T) {
	if New("").root != "/sys/fs/cgroup" {
		t.Error("New(\"\") does not read /sys/fs/cgroup")
	}
}
