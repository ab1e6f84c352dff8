package pam

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The hermetic tests need no root and no real accounts: libpam_wrapper
// (LD_PRELOAD) redirects pam_start to a test service directory, and
// pam_matrix checks passwords against a plain file. LD_PRELOAD only works at
// process start, so TestWrapper re-runs this test binary as a child with the
// wrapper loaded, and the child runs TestWrapperChild.

const (
	childEnv = "JHGO_PAM_WRAPPER_CHILD"
	// The passwords double as markers: they must never show up in the logs.
	alicePassword = "s3cret-alice-PASSWORD"
	wrongPassword = "wrong-PASSWORD-guess"
)

// syncBuffer collects log output from PAM goroutines that may outlive a
// subtest.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// firstExisting returns the first path matched by the glob patterns, or "".
func firstExisting(patterns ...string) string {
	for _, p := range patterns {
		matches, _ := filepath.Glob(p)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
				return m
			}
		}
	}
	return ""
}

func findPamWrapper() string {
	return firstExisting(
		"/usr/lib/*/libpam_wrapper.so*",
		"/usr/lib64/libpam_wrapper.so*",
		"/usr/lib/libpam_wrapper.so*",
		"/usr/local/lib*/libpam_wrapper.so*",
	)
}

func findPamMatrix() string {
	return firstExisting(
		"/usr/lib/*/pam_wrapper/pam_matrix.so",
		"/usr/lib64/pam_wrapper/pam_matrix.so",
		"/usr/lib/pam_wrapper/pam_matrix.so",
		"/usr/local/lib*/pam_wrapper/pam_matrix.so",
	)
}

// findSystemModule locates a stock Linux-PAM module for the slow stack.
func findSystemModule(name string) string {
	return firstExisting(
		"/lib/*/security/"+name,
		"/usr/lib/*/security/"+name,
		"/lib64/security/"+name,
		"/usr/lib64/security/"+name,
		"/lib/security/"+name,
		"/usr/lib/security/"+name,
	)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWrapper(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("running as the pam_wrapper child")
	}
	wrapper := findPamWrapper()
	if wrapper == "" {
		t.Skip("libpam_wrapper.so not found: install libpam-wrapper (Debian/Ubuntu) to run the hermetic PAM tests")
	}
	matrix := findPamMatrix()
	if matrix == "" {
		t.Skip("pam_matrix.so not found next to libpam_wrapper.so: install libpam-wrapper to run the hermetic PAM tests")
	}

	dir := t.TempDir()
	svcDir := filepath.Join(dir, "pam.d")
	if err := os.Mkdir(svcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := filepath.Join(dir, "passwd")
	writeFile(t, passwd,
		"alice:"+alicePassword+":jupyterhub-go\n"+
			// bob's password is right but his account is for another service,
			// so pam_matrix's account stack refuses him.
			"bob:bobpw:other-service\n"+
			"carol:carolpw:jhgo-slow\n")

	// libpam always loads "other" as the fallback stack and complains on
	// stderr when it is missing; a deny-all one is also the safe real-world
	// shape.
	writeFile(t, filepath.Join(svcDir, "other"),
		"auth requisite pam_deny.so\naccount requisite pam_deny.so\n")
	writeFile(t, filepath.Join(svcDir, "jupyterhub-go"),
		"auth required "+matrix+"\naccount required "+matrix+"\n")
	writeFile(t, filepath.Join(svcDir, "jhgo-broken"),
		"auth required /nonexistent/pam_jhgo_missing.so\naccount required "+matrix+"\n")
	writeFile(t, filepath.Join(svcDir, "jhgo-nodb"),
		"auth required "+matrix+" passdb="+filepath.Join(dir, "missing-passwd")+"\naccount required "+matrix+"\n")
	if exec := findSystemModule("pam_exec.so"); exec != "" {
		writeFile(t, filepath.Join(svcDir, "jhgo-slow"),
			"auth required "+exec+" quiet /bin/sleep 3\nauth required "+matrix+"\naccount required "+matrix+"\n")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-test.run=^TestWrapperChild$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		"LD_PRELOAD="+wrapper,
		"PAM_WRAPPER=1",
		"PAM_WRAPPER_SERVICE_DIR="+svcDir,
		"PAM_MATRIX_PASSWD="+passwd,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pam_wrapper child failed: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("PASS")) {
		t.Fatalf("pam_wrapper child ran no tests:\n%s", out)
	}
	t.Logf("pam_wrapper child output:\n%s", out)
}

func TestWrapperChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("only runs as the child of TestWrapper, with libpam_wrapper preloaded")
	}
	svcDir := os.Getenv("PAM_WRAPPER_SERVICE_DIR")

	// Both ways of starting PAM: plain pam_start is what production uses for
	// /etc/pam.d and only finds the test services because pam_wrapper
	// redirects it; pam_start_confdir is what a custom ConfDir uses.
	for _, mode := range []struct {
		name  string
		plain bool
	}{{"pam_start", true}, {"pam_start_confdir", false}} {
		t.Run(mode.name, func(t *testing.T) {
			logs := &syncBuffer{}
			newAuth := func(t *testing.T, service string) *Authenticator {
				t.Helper()
				a, err := New(Options{Service: service, ConfDir: svcDir, Logger: testLogger(logs)})
				if err != nil {
					t.Fatalf("New(%q): %v", service, err)
				}
				a.plainStart = mode.plain
				return a
			}
			a := newAuth(t, "jupyterhub-go")
			ctx := context.Background()

			t.Run("right password", func(t *testing.T) {
				if err := a.Authenticate(ctx, "alice", alicePassword); err != nil {
					t.Fatalf("Authenticate(alice, right password) = %v, want nil", err)
				}
			})

			var wrongErr, unknownErr error
			t.Run("wrong password", func(t *testing.T) {
				wrongErr = a.Authenticate(ctx, "alice", wrongPassword)
				if !errors.Is(wrongErr, ErrAuthFailed) {
					t.Fatalf("Authenticate(alice, wrong password) = %v, want ErrAuthFailed", wrongErr)
				}
			})
			t.Run("unknown user", func(t *testing.T) {
				unknownErr = a.Authenticate(ctx, "mallory", wrongPassword)
				if !errors.Is(unknownErr, ErrAuthFailed) {
					t.Fatalf("Authenticate(mallory) = %v, want ErrAuthFailed", unknownErr)
				}
				if wrongErr != nil && unknownErr.Error() != wrongErr.Error() {
					t.Fatalf("unknown user and wrong password differ: %q vs %q", unknownErr, wrongErr)
				}
			})
			t.Run("account stack refuses", func(t *testing.T) {
				err := a.Authenticate(ctx, "bob", "bobpw")
				if !errors.Is(err, ErrAuthFailed) {
					t.Fatalf("Authenticate(bob) = %v, want ErrAuthFailed from the account stack", err)
				}
				if !strings.Contains(logs.String(), "stage=account") {
					t.Fatalf("bob should have failed in the account stage; logs:\n%s", logs)
				}
			})
			t.Run("upper-case service name", func(t *testing.T) {
				// libpam lower-cases service names; New must check the same file.
				up := newAuth(t, "JupyterHub-Go")
				if err := up.Authenticate(ctx, "alice", alicePassword); err != nil {
					t.Fatalf("Authenticate via JupyterHub-Go = %v, want nil", err)
				}
			})
			t.Run("broken module is a system error", func(t *testing.T) {
				err := newAuth(t, "jhgo-broken").Authenticate(ctx, "alice", alicePassword)
				if err == nil || errors.Is(err, ErrAuthFailed) {
					t.Fatalf("Authenticate on a broken stack = %v, want a system error", err)
				}
				t.Logf("broken stack: %v", err)
				if !strings.Contains(err.Error(), "jhgo-broken") {
					t.Errorf("error %q should name the service", err)
				}
			})
			t.Run("unreachable password backend is a system error", func(t *testing.T) {
				err := newAuth(t, "jhgo-nodb").Authenticate(ctx, "alice", alicePassword)
				if err == nil || errors.Is(err, ErrAuthFailed) {
					t.Fatalf("Authenticate with a missing passdb = %v, want a system error", err)
				}
				t.Logf("missing passdb: %v", err)
			})
			t.Run("deadline ends a slow PAM call", func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(svcDir, "jhgo-slow")); err != nil {
					t.Skip("pam_exec.so not found, cannot build a slow PAM stack")
				}
				slow := newAuth(t, "jhgo-slow")
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				start := time.Now()
				err := slow.Authenticate(ctx, "carol", "carolpw")
				if took := time.Since(start); took > 2*time.Second {
					t.Fatalf("Authenticate took %v after its deadline, want prompt return", took)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Authenticate on a slow stack = %v, want context.DeadlineExceeded", err)
				}
				// The abandoned call must not have broken the Authenticator.
				if err := a.Authenticate(context.Background(), "alice", alicePassword); err != nil {
					t.Fatalf("login after an abandoned one = %v, want nil", err)
				}
			})

			if l := logs.String(); strings.Contains(l, alicePassword) || strings.Contains(l, wrongPassword) {
				t.Fatalf("a password leaked into the logs:\n%s", l)
			}
			if l := logs.String(); !strings.Contains(l, "user=mallory") || !strings.Contains(l, "Authentication failure") {
				t.Errorf("logs should name the user and the PAM error:\n%s", l)
			}
		})
	}
}

// The tests below need no PAM stack at all: they check what is refused
// before PAM is ever called.

func newTestService(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	// pam_deny would refuse every login, which proves nothing reached PAM if
	// a test sees its early refusal instead.
	writeFile(t, filepath.Join(dir, "jupyterhub-go"), "auth requisite pam_deny.so\naccount requisite pam_deny.so\n")
	return dir
}

func TestNewMissingServiceFile(t *testing.T) {
	dir := t.TempDir()
	_, err := New(Options{Service: "no-such-service", ConfDir: dir, Logger: testLogger(io.Discard)})
	if err == nil {
		t.Fatal("New with a missing service file succeeded, want an error")
	}
	want := filepath.Join(dir, "no-such-service")
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q should name %s", err, want)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q should wrap os.ErrNotExist", err)
	}
}

func TestNewDefaults(t *testing.T) {
	dir := newTestService(t)
	a, err := New(Options{ConfDir: dir, Logger: testLogger(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	if a.service != "jupyterhub-go" {
		t.Errorf("default service = %q, want jupyterhub-go", a.service)
	}
	if a.plainStart {
		t.Error("a custom ConfDir must use pam_start_confdir, not pam_start")
	}
}

func TestNewRejectsBadServiceNames(t *testing.T) {
	dir := newTestService(t)
	for _, name := range []string{"../jupyterhub-go", "a/b", "..", ".", "sp ace", "nul\x00", "ünï"} {
		if _, err := New(Options{Service: name, ConfDir: dir, Logger: testLogger(io.Discard)}); err == nil {
			t.Errorf("New(Service: %q) succeeded, want an error", name)
		}
	}
}

func TestNewRejectsDirectoryAsService(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "jupyterhub-go"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{ConfDir: dir, Logger: testLogger(io.Discard)}); err == nil {
		t.Fatal("New accepted a directory as the service file")
	}
}

func TestRefusedBeforePAM(t *testing.T) {
	logs := &syncBuffer{}
	a, err := New(Options{ConfDir: newTestService(t), Logger: testLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ user, pass string }{
		{"alice", ""},
		{"", "pw"},
		{"al\x00ice", "pw"},
		{"../alice", "pw"},
		{"alice", "pw\x00more"},
	} {
		err := a.Authenticate(context.Background(), c.user, c.pass)
		if err != ErrAuthFailed {
			t.Errorf("Authenticate(%q, %q) = %v, want exactly ErrAuthFailed", c.user, c.pass, err)
		}
	}
	if strings.Contains(logs.String(), "pam_deny") || strings.Contains(logs.String(), "stage=") {
		t.Fatalf("a refused login reached PAM:\n%s", logs)
	}
}

func TestCancelledContext(t *testing.T) {
	a, err := New(Options{ConfDir: newTestService(t), Logger: testLogger(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err = a.Authenticate(ctx, "alice", "pw")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Authenticate with a cancelled ctx = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Authenticate with a cancelled ctx took %v", took)
	}
}

func TestGroupsRoot(t *testing.T) {
	groups, err := Groups("root")
	if err != nil {
		t.Skipf("no root user on this machine: %v", err)
	}
	found := false
	for _, g := range groups {
		if g == "root" {
			found = true
		}
	}
	if !found {
		t.Fatalf("Groups(root) = %v, want the primary group root among them", groups)
	}
}

func TestGroupsUnknownUser(t *testing.T) {
	if _, err := Groups("jhgo-no-such-user-x9"); err == nil {
		t.Fatal("Groups of an unknown user succeeded, want an error")
	}
	if _, err := Groups(""); err == nil {
		t.Fatal("Groups of an empty name succeeded, want an error")
	}
}
