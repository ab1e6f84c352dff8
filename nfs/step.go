package nfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/coreos/go-systemd/v22/unit"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Options is the [nfs] section as the step takes it.
type Options struct {
	Server, Export string // nfs.server, nfs.export (after the environment's overrides)
	What, Where    string // templates (Expand); Where "" is "{HOME}"
	MountOptions   string // nfs.options
	MountTimeout   time.Duration
	UnmountAfter   time.Duration
	// MinUID keeps system accounts from mounting anything, as the unit step keeps them from
	// starting; root is refused whatever it says.
	MinUID int
}

// Systemd is the part of systemd's D-Bus API the step uses. go-systemd's *dbus.Conn has it; the hub
// passes the spawner's connection (spawner.Manager.Conn).
type Systemd interface {
	StartTransientUnitContext(ctx context.Context, name, mode string, props []sd.Property, ch chan<- string) (int, error)
	StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ResetFailedUnitContext(ctx context.Context, name string) error
	GetAllPropertiesContext(ctx context.Context, unit string) (map[string]any, error)
	ListUnitsByPatternsContext(ctx context.Context, states, patterns []string) ([]sd.UnitStatus, error)
	ListUnitsByNamesContext(ctx context.Context, units []string) ([]sd.UnitStatus, error)
}

// account is what the step needs of a user's passwd entry.
type account struct {
	Name string
	UID  int
	Home string
}

// Step is the spawn step that mounts the user's home from NFS and checks the user can use it (see
// the package doc). It is safe for concurrent use.
type Step struct {
	sys  Systemd
	opts Options
	log  *slog.Logger

	// The host, as the step sees it; tests replace these.
	lookup    func(name string) (account, error)
	mountinfo func() ([]Mount, error)
	stat      func(path string) (owner int, mode fs.FileMode, err error)
	journal   func(ctx context.Context, unit string, since time.Time) ([]string, error)
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	poll      time.Duration // how often a home still in use after its grace is looked at again

	mu      sync.Mutex       // guards homes, claimed and every home's claims
	homes   map[string]*home // by mount point
	claimed map[int64]string // server id → the mount point it claims (see home.claims)
}

// home is what this hub process knows of one mount point.
type home struct {
	// lock is held while a spawn mounts and checks the home and while a stop or a timer decides
	// whether to unmount it; a channel, so that waiting for it honours the caller's context.
	lock chan struct{}
	// claims are this hub's servers on the home (server id → unit), from the start half's end to
	// the stop half: also those whose unit systemd does not know yet. Guarded by Step.mu, not by
	// lock, so that a stop can always let go of its claim, even while a slow mount holds lock.
	claims map[int64]string
	timer  *time.Timer // the pending unmount, if any
	gen    int         // bumped whenever timer changes, so a timer that fired late knows it was replaced
}

// NewStep makes the nfs step. opts must have passed config validation.
func NewStep(sys Systemd, opts Options, log *slog.Logger) *Step {
	if log == nil {
		log = slog.Default()
	}
	if opts.Where == "" {
		opts.Where = "{HOME}"
	}
	dialer := &net.Dialer{Timeout: probeTimeout}
	return &Step{
		sys: sys, opts: opts, log: log,
		lookup: lookupAccount, mountinfo: readMountInfo, stat: statOwner, journal: journalLines, dial: dialer.DialContext,
		poll:  minPoll,
		homes: map[string]*home{}, claimed: map[int64]string{},
	}
}

const (
	// probeTimeout bounds the connection to the server's NFS port that comes before a mount.
	probeTimeout = 3 * time.Second
	// minPoll is how often, at least, a home that something outside the hub still uses is looked
	// at again, so that it is unmounted after that last user is gone too.
	minPoll = 15 * time.Second
	// descPrefix starts the Description of every mount unit the hub makes; with the user's name
	// after it, it is how a stop half (and a restarted hub) finds the unit from the record alone.
	descPrefix = "jupyterhub-go: NFS home of "
	// checkPrefix names the short-lived units that look into a home as its user.
	checkPrefix = "jupyterhub-go-nfs-check-"
)

func (*Step) Name() string { return "nfs" }

// Start mounts the user's home if it is not mounted yet, checks the user can read, write and
// enter it, and asks the unit step to order the server after the mount.
func (s *Step) Start(ctx context.Context, job *servers.Job) error {
	sv := job.Server
	acct, err := s.lookup(sv.UserName)
	if err != nil {
		return fmt.Errorf("user %s has no Unix account on this host: %w", sv.UserName, err)
	}
	if acct.UID == 0 {
		return fmt.Errorf("refusing to mount a home for %s (uid 0): servers never run as root", acct.Name)
	}
	if acct.UID < s.opts.MinUID {
		return fmt.Errorf("refusing to mount a home for %s: uid %d is a system account (below auth.pam.min_uid %d)", acct.Name, acct.UID, s.opts.MinUID)
	}
	v := Vars{Server: s.opts.Server, Export: s.opts.Export, User: acct.Name, UID: acct.UID, Home: acct.Home}
	a := attempt{User: acct.Name, UID: acct.UID, What: Expand(s.opts.What, v), Where: Expand(s.opts.Where, v), Timeout: s.opts.MountTimeout}
	if _, _, ok := splitWhat(a.What); !ok {
		return fmt.Errorf("nfs.what made %q for %s, which is not \"host:/path\"", a.What, acct.Name)
	}
	name, err := MountUnitName(a.Where)
	if err != nil {
		return fmt.Errorf("nfs.where for %s: %w", acct.Name, err)
	}

	h := s.home(a.Where)
	if err := h.acquire(ctx); err != nil {
		return timedOut(a, "waiting for another spawn that mounts the same home", err)
	}
	defer h.release()
	s.cancelTimer(h) // a spawn wants the home: whatever was going to unmount it must not

	ours, err := s.ensureMounted(ctx, job, a, name)
	if err != nil {
		return err
	}
	job.Progress(20, fmt.Sprintf("Checking that %s can read, write and enter %s as %s", a.User, a.Where, a.User))
	if err := s.checkAsUser(ctx, a); err != nil {
		var e *Error
		if errors.As(err, &e) {
			s.log.Warn("home check failed", "user", a.User, "where", a.Where, "err", err, "detail", strings.Join(e.Log, "; "))
		}
		if ours && !s.claimedByAny(h) {
			// Nothing else of this hub uses it: the failed spawn leaves no mount behind (unless a
			// unit outside the hub uses it, which unmountIfUnused sees). This outlives the spawn,
			// which may have ended because its time ran out.
			undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*s.opts.MountTimeout+10*time.Second)
			s.unmountIfUnused(undo, h, a.Where, name, sv.Unit)
			cancel()
		}
		return err
	}
	if ours {
		s.mu.Lock()
		h.claims[sv.ID] = sv.Unit
		s.claimed[sv.ID] = a.Where
		s.mu.Unlock()
	}
	job.RequiresMounts = append(job.RequiresMounts, a.Where)
	job.Progress(25, fmt.Sprintf("%s's home %s is ready", a.User, a.Where))
	return nil
}

// ensureMounted mounts the home unless something is mounted there already; ours reports whether
// the mount is the hub's own (mounted now or for another of the user's servers).
func (s *Step) ensureMounted(ctx context.Context, job *servers.Job, a attempt, name string) (ours bool, err error) {
	mounts, err := s.mountinfo()
	if err != nil {
		return false, err
	}
	u, err := s.unitInfo(ctx, name)
	if err != nil {
		return false, fmt.Errorf("look up the mount unit %s: %w", name, err)
	}
	mine := u.Loaded && u.Transient && u.Description == descPrefix+a.User
	if m, ok := mountAt(mounts, a.Where); ok {
		if mine {
			job.Progress(15, fmt.Sprintf("%s's home %s is mounted already (from %s)", a.User, a.Where, m.Source))
			return true, nil
		}
		s.log.Info("home is mounted by someone else; leaving it as it is", "user", a.User, "where", a.Where, "source", m.Source, "fstype", m.FSType)
		job.Progress(15, fmt.Sprintf("%s's home %s is mounted already (%s from %s); the hub leaves that mount alone", a.User, a.Where, m.FSType, m.Source))
		return false, nil
	}
	if m, ok := autofsAbove(mounts, a.Where); ok {
		job.Progress(15, fmt.Sprintf("%s's home %s is automounted (autofs on %s); the hub leaves it to autofs", a.User, a.Where, m.Point))
		return false, nil
	}
	if u.Loaded && !mine && u.ActiveState != "failed" {
		// An fstab entry (or another tool's unit): systemd mounts it for the server, which
		// requires it (RequiresMountsFor=).
		job.Progress(15, fmt.Sprintf("%s's home %s has a mount unit of its own (%s); systemd mounts it", a.User, a.Where, name))
		return false, nil
	}
	if u.Loaded && u.ActiveState == "failed" {
		// Left by a hub that died before it cleaned up after a failed mount.
		if err := s.sys.ResetFailedUnitContext(ctx, name); err != nil && !isNoSuchUnit(err) {
			s.log.Warn("reset failed mount unit", "unit", name, "err", err)
		}
	}
	if addr := probeAddr(a.What, s.opts.MountOptions); addr != "" {
		if conn, err := s.dial(ctx, "tcp", addr); err == nil {
			conn.Close()
		} else if probeFailed(err) {
			return false, unreachable(a, addr, err)
		}
	}
	job.Progress(15, fmt.Sprintf("Mounting %s on %s (NFS)", a.What, a.Where))
	if err := s.mount(ctx, a, name); err != nil {
		return false, err
	}
	s.log.Info("mounted home", "user", a.User, "what", a.What, "where", a.Where, "unit", name)
	return true, nil
}

// mount starts the transient mount unit and waits until it is mounted or has failed.
func (s *Step) mount(ctx context.Context, a attempt, name string) error {
	// systemd gives mount.nfs4 the unit's TimeoutUSec, then as long again after SIGTERM: wait
	// a little longer than both, and no longer than the spawn.
	ctx, cancel := context.WithTimeout(ctx, 2*s.opts.MountTimeout+5*time.Second)
	defer cancel()
	props := []sd.Property{
		sd.PropDescription(descPrefix + a.User),
		prop("What", a.What),
		prop("Where", a.Where),
		prop("Type", "nfs4"),
		prop("Options", s.opts.MountOptions),
		prop("TimeoutUSec", uint64(s.opts.MountTimeout/time.Microsecond)),
	}
	since := time.Now()
	ch := make(chan string, 1) // buffered: go-systemd's signal loop must never block on a caller that left
	_, err := s.sys.StartTransientUnitContext(ctx, name, "fail", props, ch)
	if isDBusError(err, "org.freedesktop.systemd1.UnitExists") {
		// Still loaded (an inactive unit a server's dependency keeps): start it as it is.
		ch = make(chan string, 1)
		_, err = s.sys.StartUnitContext(ctx, name, "fail", ch)
	}
	if err != nil {
		return fmt.Errorf("ask systemd to mount %s on %s: %w", a.What, a.Where, err)
	}
	result, err := waitJob(ctx, ch)
	if err != nil {
		s.abandon(name)
		return timedOut(a, "mounting "+a.What, err)
	}
	if result == "done" {
		return nil
	}
	u, _ := s.unitInfo(ctx, name)
	lines := s.failureLines(ctx, name, since)
	if err := s.sys.ResetFailedUnitContext(ctx, name); err != nil && !isNoSuchUnit(err) {
		s.log.Warn("reset failed mount unit", "unit", name, "err", err)
	}
	e := classifyMount(a, u.Result, lines)
	if errors.Is(e, ErrTimeout) {
		addr := probeAddr(a.What, s.opts.MountOptions)
		var probeErr error
		if addr != "" {
			var conn net.Conn
			if conn, probeErr = s.dial(ctx, "tcp", addr); probeErr == nil {
				conn.Close()
			}
		}
		e = afterTimeout(e, a, addr, probeErr)
	}
	s.log.Warn("mount failed", "user", a.User, "what", a.What, "where", a.Where, "job", result, "result", u.Result, "err", e.Msg, "log", strings.Join(lines, "\n"))
	return e
}

// checkAsUser runs `test -r . && test -w . && test -x .` in the home as the user, in a transient
// unit with WorkingDirectory= the home: systemd enters it after switching to the user, as it will
// for the server, and the NFS server answers for the user, not for a squashed root.
func (s *Step) checkAsUser(ctx context.Context, a attempt) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.MountTimeout+10*time.Second)
	defer cancel()
	name := checkPrefix + unit.UnitNameEscape(a.User) + ".service"
	// A check a dead hub left failed would block the name.
	if err := s.sys.ResetFailedUnitContext(ctx, name); err != nil && !isNoSuchUnit(err) {
		s.log.Debug("reset check unit", "unit", name, "err", err)
	}
	props := []sd.Property{
		sd.PropDescription(fmt.Sprintf("jupyterhub-go: can %s use the home %s?", a.User, a.Where)),
		sd.PropType("oneshot"),
		// The bool is "ignore failure" in systemd (go-systemd names it otherwise): false.
		sd.PropExecStart([]string{"/bin/sh", "-c", "test -r . && test -w . && test -x ."}, false),
		prop("User", a.User),
		prop("WorkingDirectory", a.Where),
		prop("RequiresMountsFor", []string{a.Where}),
		prop("NoNewPrivileges", true),
		prop("TimeoutStartUSec", uint64(s.opts.MountTimeout/time.Microsecond)),
		prop("TimeoutStopUSec", uint64(5*time.Second/time.Microsecond)),
	}
	ch := make(chan string, 1)
	if _, err := s.sys.StartTransientUnitContext(ctx, name, "fail", props, ch); err != nil {
		return fmt.Errorf("ask systemd to check %s's home as %s: %w", a.User, a.User, err)
	}
	result, err := waitJob(ctx, ch)
	if err != nil {
		s.abandon(name)
		return timedOut(a, "checking the home as "+a.User, err)
	}
	if result == "done" {
		return nil // a oneshot that exited 0 is inactive, and systemd has collected it
	}
	out := checkOutcome{JobResult: result}
	if u, err := s.unitInfo(ctx, name); err == nil {
		out.Result, out.Status = u.Result, u.ExecMainStatus
	}
	if err := s.sys.ResetFailedUnitContext(ctx, name); err != nil && !isNoSuchUnit(err) {
		s.log.Warn("reset check unit", "unit", name, "err", err)
	}
	out.Owner, out.Mode, out.StatErr = s.stat(a.Where)
	return classifyCheck(a, out)
}

// abandon stops a unit whose job the caller gave up waiting for (the spawn ran out of time), so
// nothing is left behind; it must outlive the spawn's context.
func (s *Step) abandon(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.opts.MountTimeout+10*time.Second)
	defer cancel()
	ch := make(chan string, 1)
	if _, err := s.sys.StopUnitContext(ctx, name, "replace", ch); err == nil {
		waitJob(ctx, ch)
	}
	s.sys.ResetFailedUnitContext(ctx, name)
}

// Stop lets go of the user's home for this server: it is unmounted once no server and no other
// unit uses it, after nfs.unmount_after. It finds the home from systemd (the unit's Description
// names the user), so it works from the stored record alone, after a restart and a config change
// too. Its errors are logged, not returned: by now the server's unit is gone, and an error here
// would make the core keep the server as running; a home left mounted is unmounted later.
func (s *Step) Stop(ctx context.Context, sv store.Server) error {
	s.mu.Lock()
	if where, ok := s.claimed[sv.ID]; ok {
		delete(s.homes[where].claims, sv.ID)
		delete(s.claimed, sv.ID)
	}
	s.mu.Unlock()
	mounts, err := s.ourMounts(ctx, sv.UserName)
	if err != nil {
		s.log.Warn("find the user's NFS home to unmount; it stays mounted for now", "user", sv.UserName, "err", err)
		return nil
	}
	for _, m := range mounts {
		h := s.home(m.where)
		if err := h.acquire(ctx); err != nil {
			s.log.Warn("stop: wait for the home", "user", sv.UserName, "where", m.where, "err", err)
			continue
		}
		s.unmountLater(ctx, h, m.where, m.unit, sv.Unit)
		h.release()
	}
	return nil
}

// ReconcileStep arms the unmount of every home the hub mounted that no server uses, as a hub that
// was killed or restarted would otherwise never unmount them; the check happens again when the
// timer fires. It also clears check units that a dead hub left failed.
func (s *Step) ReconcileStep(ctx context.Context) error {
	mounts, err := s.ourMounts(ctx, "")
	if err != nil {
		return err
	}
	for _, m := range mounts {
		h := s.home(m.where)
		if err := h.acquire(ctx); err != nil {
			return err
		}
		if !s.claimedByAny(h) {
			s.unmountLater(ctx, h, m.where, m.unit, "")
		}
		h.release()
	}
	failed, err := s.sys.ListUnitsByPatternsContext(ctx, []string{"failed"}, []string{checkPrefix + "*.service"})
	if err != nil {
		return fmt.Errorf("list check units: %w", err)
	}
	for _, u := range failed {
		if err := s.sys.ResetFailedUnitContext(ctx, u.Name); err != nil && !isNoSuchUnit(err) {
			s.log.Warn("reset check unit", "unit", u.Name, "err", err)
		}
	}
	return nil
}

type ourMount struct{ unit, where string }

// ourMounts lists the hub's mount units, of one user or (user "") of all.
func (s *Step) ourMounts(ctx context.Context, user string) ([]ourMount, error) {
	units, err := s.sys.ListUnitsByPatternsContext(ctx, nil, []string{"*.mount"})
	if err != nil {
		return nil, fmt.Errorf("list mount units: %w", err)
	}
	var out []ourMount
	for _, u := range units {
		owner, ok := strings.CutPrefix(u.Description, descPrefix)
		if !ok || u.LoadState != "loaded" || (user != "" && owner != user) {
			continue
		}
		out = append(out, ourMount{unit: u.Name, where: unit.UnitNamePathUnescape(strings.TrimSuffix(u.Name, ".mount"))})
	}
	return out, nil
}

// unmountLater decides, with h locked, what becomes of a home that exclude (a server's unit, or
// "") has let go of: kept while this hub's servers claim it; else looked at again after
// nfs.unmount_after (unmounted at once if that is 0 and nothing uses it).
func (s *Step) unmountLater(ctx context.Context, h *home, where, name, exclude string) {
	if s.claimedByAny(h) {
		s.log.Debug("home stays mounted: another server of this hub uses it", "where", where)
		return
	}
	if s.opts.UnmountAfter == 0 {
		s.unmountIfUnused(ctx, h, where, name, exclude)
		return
	}
	s.arm(h, s.opts.UnmountAfter, where, name)
}

// unmountIfUnused unmounts the home unless a unit still needs it; then it looks again later.
func (s *Step) unmountIfUnused(ctx context.Context, h *home, where, name, exclude string) {
	users, err := s.users(ctx, name, exclude)
	if err != nil {
		s.log.Warn("find the units that use a home; it stays mounted for now", "where", where, "err", err)
		s.arm(h, max(s.opts.UnmountAfter, s.poll), where, name)
		return
	}
	if len(users) > 0 {
		s.log.Info("home stays mounted: units still use it", "where", where, "units", users)
		s.arm(h, max(s.opts.UnmountAfter, s.poll), where, name)
		return
	}
	s.unmount(ctx, where, name)
}

// arm (re)sets the home's pending unmount to d from now.
func (s *Step) arm(h *home, d time.Duration, where, name string) {
	s.cancelTimer(h)
	gen := h.gen
	h.timer = time.AfterFunc(d, func() {
		// A timer is the hub's own and has no request to end with; the wait is bounded.
		ctx, cancel := context.WithTimeout(context.Background(), 2*s.opts.MountTimeout+time.Minute)
		defer cancel()
		if err := h.acquire(ctx); err != nil {
			s.log.Warn("unmount: wait for the home", "where", where, "err", err)
			return
		}
		defer h.release()
		if h.gen != gen { // a spawn or a later stop replaced this timer while it waited
			return
		}
		h.timer = nil
		if s.claimedByAny(h) {
			return
		}
		s.unmountIfUnused(ctx, h, where, name, "")
	})
}

// cancelTimer drops the home's pending unmount; h is locked.
func (s *Step) cancelTimer(h *home) {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	h.gen++
}

// users are the units that need the mount: those that require it or are ordered after it
// (RequiresMountsFor= gives both) and are not dead, but for exclude.
func (s *Step) users(ctx context.Context, name, exclude string) ([]string, error) {
	props, err := s.sys.GetAllPropertiesContext(ctx, name)
	if err != nil {
		if isNoSuchUnit(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("properties of %s: %w", name, err)
	}
	seen := map[string]bool{}
	var candidates []string
	for _, key := range []string{"RequiredBy", "Before", "BoundBy", "WantedBy"} {
		deps, _ := props[key].([]string)
		for _, d := range deps {
			if seen[d] || d == exclude || !(strings.HasSuffix(d, ".service") || strings.HasSuffix(d, ".scope")) {
				continue
			}
			seen[d] = true
			candidates = append(candidates, d)
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	states, err := s.sys.ListUnitsByNamesContext(ctx, candidates)
	if err != nil {
		return nil, fmt.Errorf("states of the units that need %s: %w", name, err)
	}
	var out []string
	for _, st := range states {
		switch st.ActiveState {
		case "active", "activating", "deactivating", "reloading", "refreshing":
			out = append(out, st.Name)
		}
	}
	return out, nil
}

// unmount stops the mount unit. A mount something outside systemd still uses (a login shell in
// the home) refuses to go: umount(8) says busy, the unit stays mounted, and the next stop of one
// of the user's servers tries again.
func (s *Step) unmount(ctx context.Context, where, name string) {
	ch := make(chan string, 1)
	// "fail", not "replace": a start of the mount queued meanwhile wins over this stop.
	_, err := s.sys.StopUnitContext(ctx, name, "fail", ch)
	if isNoSuchUnit(err) {
		return
	}
	if err != nil {
		s.log.Warn("unmount home", "where", where, "unit", name, "err", err)
		return
	}
	result, err := waitJob(ctx, ch)
	if err := s.sys.ResetFailedUnitContext(ctx, name); err != nil && !isNoSuchUnit(err) {
		s.log.Debug("reset mount unit", "unit", name, "err", err)
	}
	if err != nil || result != "done" {
		s.log.Warn("home could not be unmounted; it stays mounted until the next of its user's servers stops", "where", where, "unit", name, "result", result, "err", err)
		return
	}
	if mounts, err := s.mountinfo(); err == nil {
		if _, still := mountAt(mounts, where); still {
			s.log.Warn("home is still mounted after its unit stopped (a process outside the hub may use it)", "where", where, "unit", name)
			return
		}
	}
	s.log.Info("unmounted home", "where", where, "unit", name)
}

// home returns the state of a mount point, made on first use.
func (s *Step) home(where string) *home {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.homes[where]
	if h == nil {
		h = &home{lock: make(chan struct{}, 1), claims: map[int64]string{}}
		s.homes[where] = h
	}
	return h
}

// claimedByAny reports whether one of this hub's servers claims the home.
func (s *Step) claimedByAny(h *home) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(h.claims) > 0
}

func (h *home) acquire(ctx context.Context) error {
	select {
	case h.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (h *home) release() { <-h.lock }

// unitInfo is what the step reads of a unit; a unit systemd does not know reads as not loaded.
type unitInfo struct {
	Loaded         bool
	Transient      bool
	Description    string
	ActiveState    string
	Result         string
	ExecMainStatus int32
}

func (s *Step) unitInfo(ctx context.Context, name string) (unitInfo, error) {
	props, err := s.sys.GetAllPropertiesContext(ctx, name)
	if isNoSuchUnit(err) {
		return unitInfo{}, nil
	}
	if err != nil {
		return unitInfo{}, err
	}
	var u unitInfo
	ls, _ := props["LoadState"].(string)
	u.Loaded = ls == "loaded"
	u.Transient, _ = props["Transient"].(bool)
	u.Description, _ = props["Description"].(string)
	u.ActiveState, _ = props["ActiveState"].(string)
	u.Result, _ = props["Result"].(string)
	u.ExecMainStatus, _ = props["ExecMainStatus"].(int32)
	return u, nil
}

// failureLines fetches the journal of a unit that just failed; journald may lag behind the job
// result by a moment, so it retries briefly until mount.nfs4's or systemd's verdict is there.
func (s *Step) failureLines(ctx context.Context, name string, since time.Time) []string {
	var lines []string
	for range 5 {
		var err error
		lines, err = s.journal(ctx, name, since)
		if err != nil {
			s.log.Debug("journal of a failed unit", "unit", name, "err", err)
			return nil
		}
		if mountReason(lines) != "" {
			return lines
		}
		select {
		case <-ctx.Done():
			return lines
		case <-time.After(200 * time.Millisecond):
		}
	}
	return lines
}

func prop(name string, v any) sd.Property {
	return sd.Property{Name: name, Value: dbusVariant(v)}
}

func waitJob(ctx context.Context, ch <-chan string) (string, error) {
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for systemd: %w", context.Cause(ctx))
	}
}

func lookupAccount(name string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return account{}, fmt.Errorf("uid %q of %s is not a number", u.Uid, name)
	}
	return account{Name: u.Username, UID: uid, Home: u.HomeDir}, nil
}

// statOwner is what root sees of a directory: on a root-squashed export root may not look inside
// a home, but may still read the owner and mode of its top directory.
func statOwner(path string) (int, fs.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("stat %s: no owner", path)
	}
	return int(st.Uid), fi.Mode(), nil
}
