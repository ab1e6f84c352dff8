package nfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"time"
)

// What went wrong, in the words the progress stream and the home page start the message with.
// An *Error matches one of them with errors.Is.
var (
	ErrUnreachable   = errors.New("NFS server unreachable")
	ErrExportMissing = errors.New("NFS export missing")
	ErrPermission    = errors.New("permission denied")
	ErrTimeout       = errors.New("NFS mount timeout")
)

// Error is a home that could not be mounted or used. Msg is what the user reads (the spawn's
// failure reason); Log is what mount.nfs4 and systemd said, for the hub's log.
type Error struct {
	Kind error // ErrUnreachable, ErrExportMissing, ErrPermission, ErrTimeout, or nil
	Msg  string
	Log  []string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// attempt is one user's home being mounted, as the messages describe it.
type attempt struct {
	User    string
	UID     int
	What    string // "nas:/srv/homes/alice"
	Where   string // "/home/alice"
	Timeout time.Duration
}

func (a attempt) server() string {
	if host, _, ok := splitWhat(a.What); ok {
		return host
	}
	return a.What
}

func (a attempt) remotePath() string {
	if _, path, ok := splitWhat(a.What); ok {
		return path
	}
	return a.What
}

// mountReason picks the line that says why a mount failed: mount.nfs4's own, else systemd's.
func mountReason(lines []string) string {
	for _, l := range lines {
		if strings.Contains(l, "mount.nfs") {
			return strings.TrimSpace(l)
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "Failed with result") || strings.Contains(lines[i], "timed out") {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// classifyMount says why the mount unit of a home failed, from the unit's Result ("exit-code",
// "timeout", ...) and its journal lines, which carry mount.nfs4's messages, e.g.
//
//	mount.nfs4: mounting nas:/srv/homes/bob failed, reason given by server: No such file or directory
//	mount.nfs4: access denied by server while mounting nas:/srv/homes/bob
//	mount.nfs4: Connection refused
//	home-bob.mount: Mounting timed out. Terminating.
func classifyMount(a attempt, result string, lines []string) *Error {
	reason := mountReason(lines)
	r := strings.ToLower(reason)
	e := &Error{Log: lines}
	switch {
	case strings.Contains(r, "no such file or directory"):
		e.Kind = ErrExportMissing
		e.Msg = fmt.Sprintf("%s: the NFS server %s has no %s to mount as %s's home (%s). Ask the administrator to create it on the server, owned by %s (uid %d).",
			ErrExportMissing, a.server(), a.remotePath(), a.User, reason, a.User, a.UID)
	case strings.Contains(r, "access denied by server"):
		e.Kind = ErrExportMissing
		e.Msg = fmt.Sprintf("%s: the NFS server %s does not export %s to this host (%s). Ask the administrator to export it to this host (/etc/exports on the server).",
			ErrExportMissing, a.server(), a.remotePath(), reason)
	case containsAny(r, "connection refused", "no route to host", "network is unreachable", "host is down",
		"failed to resolve", "name or service not known", "temporary failure in name resolution", "connection timed out"):
		e.Kind = ErrUnreachable
		e.Msg = fmt.Sprintf("%s: %s's home cannot be mounted from %s (%s). Ask the administrator to check that the NFS server is running and that this host can reach it.",
			ErrUnreachable, a.User, a.server(), reason)
	case containsAny(r, "permission denied", "operation not permitted"):
		e.Kind = ErrPermission
		e.Msg = fmt.Sprintf("%s: the NFS server %s refused to let this host mount %s (%s). The export's options on the server decide this (allowed clients, sec=, insecure).",
			ErrPermission, a.server(), a.remotePath(), reason)
	case result == "timeout" || strings.Contains(r, "timed out"):
		e.Kind = ErrTimeout
		e.Msg = fmt.Sprintf("%s: mounting %s on %s did not finish within %s (nfs.mount_timeout).", ErrTimeout, a.What, a.Where, a.Timeout)
	default:
		if reason == "" {
			reason = "the mount unit's result: " + result
		}
		e.Msg = fmt.Sprintf("Mounting %s's home %s from %s failed (%s).", a.User, a.Where, a.What, reason)
	}
	return e
}

// probeFailed tells a connection error that settles it (nothing will mount: the server refuses
// connections, there is no route, the name does not resolve) from one that may pass (a timeout on
// a lossy network), for which the mount itself gets its chance.
func probeFailed(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsNotFound
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTDOWN)
}

func unreachable(a attempt, addr string, err error) *Error {
	msg := err.Error()
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		msg = op.Err.Error()
	}
	return &Error{Kind: ErrUnreachable, Log: []string{err.Error()},
		Msg: fmt.Sprintf("%s: %s's home cannot be mounted from %s: connecting to %s failed (%s). Ask the administrator to check that the NFS server is running and that this host can reach it.",
			ErrUnreachable, a.User, a.server(), addr, msg)}
}

// afterTimeout adds to a mount timeout what a connection to the server's port shows: refused or
// unroutable makes it an unreachable server; answered means the server hangs in NFS itself.
func afterTimeout(e *Error, a attempt, addr string, probeErr error) *Error {
	switch {
	case addr == "":
		return e
	case probeErr == nil:
		e.Msg += fmt.Sprintf(" The server accepts connections on %s but did not complete the mount: it may be overloaded or hung.", addr)
	case probeFailed(probeErr):
		u := unreachable(a, addr, probeErr)
		u.Log = append(e.Log, u.Log...)
		return u
	default:
		e.Msg += fmt.Sprintf(" Connecting to %s does not succeed either (%v): check the network between this host and the server.", addr, probeErr)
	}
	return e
}

// checkOutcome is how the check that the user can use their home ended.
type checkOutcome struct {
	JobResult string // the start job's: "done", "failed", "dependency", "timeout", ...
	Result    string // the unit's: "exit-code", "timeout", ...
	Status    int32  // its exit status: 200 is systemd's CHDIR (cannot enter WorkingDirectory=)
	// What root sees of the home's root directory (a root-squashed root may still stat it).
	Owner   int
	Mode    fs.FileMode
	StatErr error
}

// classifyCheck explains why the check as the user failed.
func classifyCheck(a attempt, c checkOutcome) *Error {
	log := []string{fmt.Sprintf("check job %s, unit result %s, exit status %d", c.JobResult, c.Result, c.Status)}
	switch {
	case c.JobResult == "dependency":
		return &Error{Log: log, Msg: fmt.Sprintf("%s's home %s could not be mounted: its own mount unit (fstab or autofs) failed. Ask the administrator to look at the unit for %s.", a.User, a.Where, a.Where)}
	case c.Result == "timeout" || c.JobResult == "timeout":
		return &Error{Kind: ErrTimeout, Log: log, Msg: fmt.Sprintf("%s: %s's home %s is mounted, but looking into it as %s did not finish within %s (nfs.mount_timeout): the NFS server stopped answering.",
			ErrTimeout, a.User, a.Where, a.User, a.Timeout)}
	}
	what := "the home " + a.Where
	if a.What != "" {
		what += " (" + a.What + ")"
	}
	squash := "The NFS server squashes root (root_squash), so the hub cannot reach in and fix this: "
	switch {
	case c.StatErr != nil:
		return &Error{Kind: ErrPermission, Log: append(log, c.StatErr.Error()),
			Msg: fmt.Sprintf("%s: %s (uid %d) may not use %s, and root cannot look at it either (%v). %sask the administrator to give it to %s on the server.",
				ErrPermission, a.User, a.UID, what, c.StatErr, squash, a.User)}
	case c.Owner != a.UID:
		return &Error{Kind: ErrPermission, Log: log,
			Msg: fmt.Sprintf("%s: %s (uid %d) may not use %s: on the NFS server it belongs to uid %d, mode %04o. %sask the administrator to chown it to %s on the server.",
				ErrPermission, a.User, a.UID, what, c.Owner, c.Mode.Perm(), squash, a.User)}
	case c.Mode.Perm()&0o700 != 0o700:
		return &Error{Kind: ErrPermission, Log: log,
			Msg: fmt.Sprintf("%s: %s (uid %d) owns %s, but its mode %04o keeps its owner from reading, writing or entering it. %sask the administrator to chmod u+rwx it on the server.",
				ErrPermission, a.User, a.UID, what, c.Mode.Perm(), squash)}
	default:
		return &Error{Kind: ErrPermission, Log: log,
			Msg: fmt.Sprintf("%s: %s (uid %d) owns %s with mode %04o, yet the NFS server refuses to let %s read, write or enter it: the export may squash all users (all_squash, anonuid), an ACL may deny it, or uid %d means someone else on the server. Ask the administrator to check the export.",
				ErrPermission, a.User, a.UID, what, c.Mode.Perm(), a.User, a.UID)}
	}
}

// timedOut is the error for a mount or check that the spawn's own deadline cut short.
func timedOut(a attempt, doing string, err error) *Error {
	if errors.Is(err, context.Canceled) {
		return &Error{Msg: fmt.Sprintf("%s for %s was cancelled", doing, a.Where)}
	}
	return &Error{Kind: ErrTimeout, Log: []string{err.Error()},
		Msg: fmt.Sprintf("%s: %s for %s did not finish in time (%v).", ErrTimeout, doing, a.Where, err)}
}
