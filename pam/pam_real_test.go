package pam

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// These tests run the real pam_unix against a throwaway local account. They
// create users and groups, so they only run where asked to (the project's
// test VM, as root): JHGO_REAL_PAM_TESTS=1.

const (
	realUser     = "jhgo-pamtest"
	realGroup    = "jhgo-pamtest-grp"
	realPassword = "Real-pam-test-pw-7"
)

func run(t *testing.T, stdin string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// removeAccount deletes the test user and group, tolerating their absence so
// it can also clear leftovers of an earlier interrupted run.
func removeAccount() {
	_ = exec.Command("userdel", "-f", realUser).Run()
	_ = exec.Command("groupdel", realUser).Run()
	_ = exec.Command("groupdel", realGroup).Run()
}

func TestRealPAM(t *testing.T) {
	if os.Getenv("JHGO_REAL_PAM_TESTS") != "1" {
		t.Skip("set JHGO_REAL_PAM_TESTS=1 (as root, on a throwaway machine) to test against real pam_unix")
	}
	if os.Getenv(childEnv) != "" {
		t.Skip("not under pam_wrapper")
	}
	if os.Geteuid() != 0 {
		t.Fatal("JHGO_REAL_PAM_TESTS=1 needs root: pam_unix reads /etc/shadow and the test creates users")
	}

	removeAccount()
	t.Cleanup(removeAccount)
	run(t, "", "useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", realUser)
	run(t, realUser+":"+realPassword+"\n", "chpasswd")

	confDir := t.TempDir()
	writeFile(t, filepath.Join(confDir, "jhgo-real"),
		"auth required pam_unix.so nodelay\naccount required pam_unix.so\n")
	// nullok would let an empty-password account in without any check,
	// unless the caller passes PAM_DISALLOW_NULL_AUTHTOK.
	writeFile(t, filepath.Join(confDir, "jhgo-real-nullok"),
		"auth required pam_unix.so nullok nodelay\naccount required pam_unix.so\n")
	writeFile(t, filepath.Join(confDir, "other"),
		"auth requisite pam_deny.so\naccount requisite pam_deny.so\n")

	logs := &syncBuffer{}
	newAuth := func(t *testing.T, service, dir string) *Authenticator {
		t.Helper()
		a, err := New(Options{Service: service, ConfDir: dir, Logger: testLogger(logs)})
		if err != nil {
			t.Fatalf("New(%s/%s): %v", dir, service, err)
		}
		return a
	}
	a := newAuth(t, "jhgo-real", confDir)
	ctx := context.Background()

	t.Run("right password", func(t *testing.T) {
		if err := a.Authenticate(ctx, realUser, realPassword); err != nil {
			t.Fatalf("Authenticate = %v, want nil", err)
		}
	})
	var wrongErr error
	t.Run("wrong password", func(t *testing.T) {
		wrongErr = a.Authenticate(ctx, realUser, "not-"+realPassword)
		if !errors.Is(wrongErr, ErrAuthFailed) {
			t.Fatalf("Authenticate = %v, want ErrAuthFailed", wrongErr)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		err := a.Authenticate(ctx, "jhgo-no-such-user", realPassword)
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("Authenticate = %v, want ErrAuthFailed", err)
		}
		if wrongErr != nil && err.Error() != wrongErr.Error() {
			t.Fatalf("unknown user and wrong password differ: %q vs %q", err, wrongErr)
		}
	})
	t.Run("locked account", func(t *testing.T) {
		run(t, "", "usermod", "-L", realUser)
		err := a.Authenticate(ctx, realUser, realPassword)
		run(t, "", "usermod", "-U", realUser)
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("Authenticate on a locked account = %v, want ErrAuthFailed", err)
		}
		// Unlocking must restore access, proving the lock was the cause.
		if err := a.Authenticate(ctx, realUser, realPassword); err != nil {
			t.Fatalf("Authenticate after unlock = %v, want nil", err)
		}
	})
	t.Run("expired account fails the account stack", func(t *testing.T) {
		run(t, "", "usermod", "--expiredate", "1970-01-02", realUser)
		err := a.Authenticate(ctx, realUser, realPassword)
		run(t, "", "usermod", "--expiredate", "", realUser)
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("Authenticate on an expired account = %v, want ErrAuthFailed", err)
		}
	})
	t.Run("empty password hash with nullok", func(t *testing.T) {
		run(t, "", "passwd", "--delete", realUser)
		defer run(t, realUser+":"+realPassword+"\n", "chpasswd")
		err := newAuth(t, "jhgo-real-nullok", confDir).Authenticate(ctx, realUser, "anything")
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("Authenticate on an empty-password account = %v, want ErrAuthFailed", err)
		}
	})
	t.Run("default /etc/pam.d via pam_start", func(t *testing.T) {
		// The production default path: plain pam_start reading /etc/pam.d.
		const service = "jhgo-pamtest-svc"
		path := filepath.Join(defaultConfDir, service)
		if _, err := os.Stat(path); err == nil {
			t.Fatalf("%s already exists; refusing to overwrite it", path)
		}
		writeFile(t, path, "auth required pam_unix.so nodelay\naccount required pam_unix.so\n")
		defer os.Remove(path)
		d, err := New(Options{Service: service, Logger: testLogger(io.Discard)})
		if err != nil {
			t.Fatal(err)
		}
		if !d.plainStart {
			t.Fatal("the default directory should use plain pam_start")
		}
		if err := d.Authenticate(ctx, realUser, realPassword); err != nil {
			t.Fatalf("Authenticate = %v, want nil", err)
		}
		if err := d.Authenticate(ctx, realUser, "not-"+realPassword); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("Authenticate with a wrong password = %v, want ErrAuthFailed", err)
		}
	})
	t.Run("groups", func(t *testing.T) {
		run(t, "", "groupadd", realGroup)
		run(t, "", "usermod", "-aG", realGroup, realUser)
		groups, err := Groups(realUser)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{realUser, realGroup} {
			if !slices.Contains(groups, want) {
				t.Errorf("Groups(%s) = %v, want %q among them", realUser, groups, want)
			}
		}
		if len(groups) != 2 {
			t.Errorf("Groups(%s) = %v, want exactly the primary and the added group", realUser, groups)
		}
	})

	if strings.Contains(logs.String(), realPassword) {
		t.Fatalf("the password leaked into the logs:\n%s", logs)
	}
	t.Logf("logs:\n%s", logs)
}
