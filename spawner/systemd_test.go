package spawner

// These tests drive a real systemd over D-Bus. They run only with
// JHGO_SYSTEMD_TESTS=1, as root, on a machine (or container) whose PID 1 is
// systemd: build with `go test -c`, run the binary there.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testUser = "jhgo-spawn-test"

func systemdManager(t *testing.T) (*Manager, string) {
	t.Helper()
	if os.Getenv("JHGO_SYSTEMD_TESTS") != "1" {
		t.Skip("set JHGO_SYSTEMD_TESTS=1 to run against the real systemd (as root)")
	}
	envDir := filepath.Join(t.TempDir(), "env")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Connect(ctx, Options{EnvDir: envDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if fi, err := os.Stat(envDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("env dir: %v %v", fi, err)
	}
	return m, envDir
}

func ensureUser(t *testing.T, name string) *user.User {
	t.Helper()
	if u, err := user.Lookup(name); err == nil {
		return u
	}
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// stopAfter makes sure no test unit outlives its test, also on failure.
func stopAfter(t *testing.T, m *Manager, unit string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Stop(ctx, unit); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func TestSystemdStartStop(t *testing.T) {
	m, envDir := systemdManager(t)
	u := ensureUser(t, testUser)
	ctx := testCtx(t, 60*time.Second)
	// The user name's '-' is escaped to \x2d: this also proves the env file
	// path survives systemd's glob expansion.
	unit := UnitName("jupyter", testUser, "srv.1")
	if err := m.Stop(ctx, unit); err != nil { // leftovers of an earlier run
		t.Fatal(err)
	}
	spec := Spec{
		Unit:             unit,
		Description:      "jhgo spawner test",
		User:             testUser,
		WorkingDirectory: u.HomeDir,
		Command:          []string{"/bin/sh", "-c", "env; sleep 300"},
		Env:              trickyEnv,
		MemoryMax:        256 << 20,
		CPUQuota:         150,
		TasksMax:         64,
		Slice:            "jhgo-test.slice",
		Sandbox:          Sandbox{PrivateTmp: true, NoNewPrivileges: true, ProtectSystem: "full", PrivateHome: u.HomeDir, UMask: "0077"},
		DeviceAllow:      []string{"/dev/null rw"},
	}
	if err := m.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	stopAfter(t, m, unit)

	st, err := m.State(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state: %+v", st)
	if !st.Running() || st.MainPID == 0 {
		t.Fatalf("state %+v: want running with a main PID", st)
	}

	envFile := envFilePath(envDir, unit)
	t.Run("properties", func(t *testing.T) {
		svc, err := m.conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"Type":               "exec",
			"User":               testUser,
			"WorkingDirectory":   u.HomeDir,
			"MemoryMax":          uint64(256 << 20),
			"CPUQuotaPerSecUSec": uint64(1_500_000),
			"TasksMax":           uint64(64),
			"Slice":              "jhgo-test.slice",
			"PrivateTmp":         true,
			"NoNewPrivileges":    true,
			"ProtectSystem":      "full",
			"ProtectHome":        "tmpfs",
			"UMask":              uint32(0o077),
			"BindPaths":          fmt.Sprint([][]any{{u.HomeDir, u.HomeDir, false, uint64(16384)}}),
			"DevicePolicy":       "closed",
			"KillMode":           "control-group",
			"StandardOutput":     "journal",
			"StandardError":      "journal",
			"EnvironmentFiles":   fmt.Sprint([][]any{{envFile, false}}),
			"DeviceAllow":        fmt.Sprint([][]any{{"/dev/null", "rw"}}),
		}
		for k, w := range want {
			got := svc[k]
			if s, ok := w.(string); ok && strings.HasPrefix(s, "[[") {
				got = fmt.Sprint(got)
			}
			if got != w {
				t.Errorf("%s = %#v, want %#v", k, svc[k], w)
			}
		}
		unitProps, err := m.conn.GetUnitPropertiesContext(ctx, unit)
		if err != nil {
			t.Fatal(err)
		}
		for k, w := range map[string]string{"CollectMode": "inactive-or-failed", "Description": "jhgo spawner test"} {
			if unitProps[k] != w {
				t.Errorf("%s = %#v, want %q", k, unitProps[k], w)
			}
		}
	})

	t.Run("envfile", func(t *testing.T) {
		fi, err := os.Stat(envFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o400 {
			t.Errorf("mode %v, want 0400", fi.Mode().Perm())
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
			t.Errorf("owned by uid %d, want root", st.Uid)
		}
	})

	t.Run("process", func(t *testing.T) {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.MainPID))
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for kv := range bytes.SplitSeq(bytes.TrimSuffix(raw, []byte{0}), []byte{0}) {
			k, v, _ := strings.Cut(string(kv), "=")
			env[k] = v
		}
		for k, w := range trickyEnv {
			if got, ok := env[k]; !ok || got != w {
				t.Errorf("%s = %q (set: %v), want %q", k, got, ok, w)
			}
		}
		if env["USER"] != testUser || env["HOME"] != u.HomeDir {
			t.Errorf("USER=%q HOME=%q", env["USER"], env["HOME"])
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.MainPID))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(status), "\nUid:\t"+u.Uid+"\t") {
			t.Errorf("process does not run as uid %s:\n%s", u.Uid, status)
		}
	})

	t.Run("list", func(t *testing.T) {
		list, err := m.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(s State) bool { return s.Unit == unit })
		if i < 0 {
			t.Fatalf("%s not in %+v", unit, list)
		}
		if !list[i].Running() {
			t.Errorf("listed as %+v", list[i])
		}
	})

	t.Run("start twice", func(t *testing.T) {
		err := m.Start(ctx, spec)
		t.Logf("second start: %v", err)
		if err == nil {
			t.Fatal("second start of a running unit succeeded")
		}
		if st, _ := m.State(ctx, unit); !st.Running() {
			t.Errorf("first instance gone: %+v", st)
		}
	})

	if err := m.Stop(ctx, unit); err != nil {
		t.Fatal(err)
	}
	st, err = m.State(ctx, unit)
	if err != nil || st.Running() {
		t.Errorf("after stop: %+v, %v", st, err)
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("env file after stop: %v", err)
	}
	list, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(list, func(s State) bool { return s.Unit == unit }) {
		t.Errorf("%s still listed after stop: %+v", unit, list)
	}
	if err := m.Stop(ctx, unit); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestSystemdStopUnknown(t *testing.T) {
	m, _ := systemdManager(t)
	ctx := testCtx(t, 30*time.Second)
	unit := UnitName("jupyter", "jhgo-no-such-user", "")
	if err := m.Stop(ctx, unit); err != nil {
		t.Errorf("Stop: %v", err)
	}
	st, err := m.State(ctx, unit)
	if err != nil || st != (State{Unit: unit, ActiveState: "inactive"}) {
		t.Errorf("State = %+v, %v", st, err)
	}
}

func TestSystemdStartFailures(t *testing.T) {
	m, envDir := systemdManager(t)
	ensureUser(t, testUser)
	for name, spec := range map[string]Spec{
		"missing binary": {User: testUser, Command: []string{"/nonexistent/jhgo-no-binary"}},
		"missing user":   {User: "jhgo-no-such-user", Command: []string{"/bin/true"}},
		"missing dir":    {User: testUser, WorkingDirectory: "/nonexistent/jhgo-dir", Command: []string{"/bin/true"}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			spec.Unit = UnitName("jupyter", testUser, strings.ReplaceAll(name, " ", "-"))
			spec.Env = map[string]string{"A": "1"}
			stopAfter(t, m, spec.Unit)
			err := m.Start(ctx, spec)
			t.Logf("error: %v", err)
			if err == nil {
				t.Fatal("start succeeded")
			}
			if !strings.Contains(err.Error(), spec.Unit) {
				t.Errorf("error does not name the unit")
			}
			if name == "missing binary" && !strings.Contains(err.Error(), "jhgo-no-binary") {
				t.Errorf("error lacks the journal's reason")
			}
			if _, err := os.Stat(envFilePath(envDir, spec.Unit)); !os.IsNotExist(err) {
				t.Errorf("env file left behind: %v", err)
			}
			if st, err := m.State(ctx, spec.Unit); err != nil || st.Running() {
				t.Errorf("state after failed start: %+v, %v", st, err)
			}
		})
	}
}

func TestSystemdJournal(t *testing.T) {
	m, _ := systemdManager(t)
	ensureUser(t, testUser)
	ctx := testCtx(t, 60*time.Second)
	unit := UnitName("jupyter", testUser, "journal")
	token := fmt.Sprintf("jhgo-journal-%d", time.Now().UnixNano())
	stopAfter(t, m, unit)
	err := m.Start(ctx, Spec{
		Unit:    unit,
		User:    testUser,
		Command: []string{"/bin/sh", "-c", "echo " + token + "-out; echo " + token + "-err >&2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{token + "-out", token + "-err"}
	var lines []string
	for {
		lines, err = m.Journal(ctx, unit, 50, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range lines {
			if strings.HasPrefix(l, token) {
				got = append(got, l)
			}
		}
		if slices.Equal(got, want) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("journal never showed %q; last read:\n%s", want, strings.Join(lines, "\n"))
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("journal:\n%s", strings.Join(lines, "\n"))
	if l, err := m.Journal(ctx, unit, 1, time.Time{}); err != nil || len(l) != 1 {
		t.Errorf("Journal(1) = %q, %v", l, err)
	}
}

// TestSystemdConcurrent runs starts and stops in parallel, as a hub does when
// many users log in at once: every job result must reach its own caller.
func TestSystemdConcurrent(t *testing.T) {
	m, _ := systemdManager(t)
	ensureUser(t, testUser)
	ctx := testCtx(t, 60*time.Second)
	const n = 8
	units := make([]string, n)
	for i := range units {
		units[i] = UnitName("jupyter", testUser, fmt.Sprintf("par%d", i))
		stopAfter(t, m, units[i])
	}
	parallel := func(f func(unit string) error) {
		t.Helper()
		errs := make(chan error, n)
		for _, u := range units {
			go func() { errs <- f(u) }()
		}
		for range units {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
	parallel(func(u string) error {
		return m.Start(ctx, Spec{Unit: u, User: testUser, Command: []string{"/bin/sleep", "300"},
			Env: map[string]string{"UNIT": u}})
	})
	list, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		if !slices.ContainsFunc(list, func(s State) bool { return s.Unit == u && s.Running() }) {
			t.Errorf("%s not running in %+v", u, list)
		}
	}
	parallel(func(u string) error { return m.Stop(ctx, u) })
	parallel(func(u string) error {
		if st, err := m.State(ctx, u); err != nil || st.Running() {
			return fmt.Errorf("%s after stop: %+v, %v", u, st, err)
		}
		return nil
	})
}
