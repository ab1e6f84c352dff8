package nfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

var bobsMount = attempt{User: "bob", UID: 1002, What: "127.0.0.1:/srv/nfs/homes/bob", Where: "/home/bob", Timeout: 20 * time.Second}

func journalFile(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/journal/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// Each way a mount fails has its own words, built from what mount.nfs4 and systemd wrote into
// the mount unit's journal (testdata/journal, as the test VM's journal has them).
func TestClassifyMount(t *testing.T) {
	for _, c := range []struct {
		file, result string
		kind         error
		says         []string
	}{
		{"export-missing.txt", "exit-code", ErrExportMissing, []string{"NFS export missing:", "has no /srv/nfs/homes/bob", "owned by bob (uid 1002)"}},
		{"access-denied.txt", "exit-code", ErrExportMissing, []string{"NFS export missing:", "does not export /srv/nfs/homes/bob to this host"}},
		{"refused.txt", "exit-code", ErrUnreachable, []string{"NFS server unreachable:", "Connection refused", "is running"}},
		{"resolve.txt", "exit-code", ErrUnreachable, []string{"NFS server unreachable:", "Name or service not known"}},
		{"timeout.txt", "timeout", ErrTimeout, []string{"NFS mount timeout:", "within 20s (nfs.mount_timeout)"}},
		{"protocol.txt", "exit-code", nil, []string{"failed (mount.nfs4: Protocol not supported)"}},
	} {
		e := classifyMount(bobsMount, c.result, journalFile(t, c.file))
		if c.kind == nil && (errors.Is(e, ErrExportMissing) || errors.Is(e, ErrUnreachable) || errors.Is(e, ErrTimeout) || errors.Is(e, ErrPermission)) {
			t.Errorf("%s: classified as %v, want none of the four", c.file, e.Kind)
		}
		if c.kind != nil && !errors.Is(e, c.kind) {
			t.Errorf("%s: kind %v, want %v (%s)", c.file, e.Kind, c.kind, e.Msg)
		}
		for _, s := range c.says {
			if !strings.Contains(e.Error(), s) {
				t.Errorf("%s: %q does not say %q", c.file, e.Error(), s)
			}
		}
		if len(e.Log) == 0 {
			t.Errorf("%s: the journal lines are not kept for the log", c.file)
		}
	}
	// A timeout without journal lines (journald lagging) is still a timeout, from the result.
	if e := classifyMount(bobsMount, "timeout", nil); !errors.Is(e, ErrTimeout) {
		t.Errorf("bare timeout: %v", e)
	}
	if e := classifyMount(bobsMount, "exit-code", nil); e.Kind != nil || !strings.Contains(e.Msg, "exit-code") {
		t.Errorf("unexplained failure: %+v", e)
	}
}

// A connection attempt to the NFS port tells a dead server (fail now, "unreachable") from one
// that is only slow or lossy (let the mount try).
func TestProbeErrors(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	noRoute := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}
	noName := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nas.invalid", IsNotFound: true}}
	slowDNS := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "i/o timeout", Name: "nas", IsTimeout: true}}
	timeout := fmt.Errorf("dial tcp 192.0.2.1:2049: %w", context.DeadlineExceeded)
	for err, settled := range map[error]bool{refused: true, noRoute: true, noName: true, slowDNS: false, timeout: false} {
		if got := probeFailed(err); got != settled {
			t.Errorf("probeFailed(%v) = %v, want %v", err, got, settled)
		}
	}
	e := unreachable(bobsMount, "127.0.0.1:2049", refused)
	if !errors.Is(e, ErrUnreachable) || !strings.Contains(e.Msg, "connecting to 127.0.0.1:2049 failed (connect: connection refused)") {
		t.Errorf("unreachable: %s", e.Msg)
	}
	// After a mount timeout: refused now means the server went away; answering means it hangs.
	tmo := func() *Error { return classifyMount(bobsMount, "timeout", journalFile(t, "timeout.txt")) }
	if e := afterTimeout(tmo(), bobsMount, "127.0.0.1:2049", refused); !errors.Is(e, ErrUnreachable) || len(e.Log) < 2 {
		t.Errorf("timeout, then refused: %v %+v", e.Kind, e)
	}
	if e := afterTimeout(tmo(), bobsMount, "127.0.0.1:2049", nil); !errors.Is(e, ErrTimeout) || !strings.Contains(e.Msg, "accepts connections on 127.0.0.1:2049") {
		t.Errorf("timeout, server answers: %s", e.Msg)
	}
	if e := afterTimeout(tmo(), bobsMount, "127.0.0.1:2049", timeout); !errors.Is(e, ErrTimeout) || !strings.Contains(e.Msg, "does not succeed either") {
		t.Errorf("timeout, connect times out: %s", e.Msg)
	}
}

// The check as the user failed: root_squash keeps the hub from looking inside, but the owner and
// mode of the top directory say what the administrator has to fix.
func TestClassifyCheck(t *testing.T) {
	chdir := checkOutcome{JobResult: "failed", Result: "exit-code", Status: 200}
	for _, c := range []struct {
		name string
		out  checkOutcome
		kind error
		says string
	}{
		{"other owner", with(chdir, 1003, 0o700, nil), ErrPermission, "belongs to uid 1003, mode 0700"},
		{"owner locked out", with(chdir, 1002, 0o500, nil), ErrPermission, "mode 0500 keeps its owner from"},
		{"squashed user", with(chdir, 1002, 0o700, nil), ErrPermission, "all_squash"},
		{"cannot stat", with(chdir, 0, 0, fs.ErrPermission), ErrPermission, "root cannot look at it either"},
		{"hung server", checkOutcome{JobResult: "failed", Result: "timeout"}, ErrTimeout, "stopped answering"},
		{"fstab unit failed", checkOutcome{JobResult: "dependency"}, nil, "its own mount unit"},
	} {
		e := classifyCheck(bobsMount, c.out)
		if (c.kind == nil && e.Kind != nil) || (c.kind != nil && !errors.Is(e, c.kind)) {
			t.Errorf("%s: kind %v, want %v", c.name, e.Kind, c.kind)
		}
		if !strings.Contains(e.Msg, c.says) {
			t.Errorf("%s: %q does not say %q", c.name, e.Msg, c.says)
		}
		if c.kind == ErrPermission && (!strings.HasPrefix(e.Msg, "permission denied: bob (uid 1002)") || !strings.Contains(e.Msg, "root_squash") && c.name != "squashed user") {
			t.Errorf("%s: %q", c.name, e.Msg)
		}
	}
}

func with(c checkOutcome, owner int, mode fs.FileMode, err error) checkOutcome {
	c.Owner, c.Mode, c.StatErr = owner, mode|fs.ModeDir, err
	return c
}
