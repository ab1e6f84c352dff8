// Package spawner runs each user server as a transient systemd service,
// talking to systemd over D-Bus. Units live in their own slice, not in the
// hub's cgroup, so restarting the hub never kills user servers; List lets the
// hub find and re-adopt them.
package spawner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
)

const (
	defaultPrefix = "jupyter"
	// defaultEnvDir is on tmpfs: env files hold secrets and are useless after
	// a reboot, when the units are gone too.
	defaultEnvDir = "/run/jupyterhub-go/env"
)

// Spec describes one user server unit.
type Spec struct {
	Unit             string // full unit name from UnitName, e.g. "jupyter-alice.service"
	Description      string
	User             string            // Unix user the server runs as (User=); required
	Group            string            // Group=; "" = user's primary group
	WorkingDirectory string            // usually the user's home; "" = "~"
	Command          []string          // argv; Command[0] should be an absolute path
	Env              map[string]string // written to a 0400 EnvironmentFile, never on the D-Bus call
	MemoryMax        uint64            // bytes; 0 = no limit set
	CPUQuota         float64           // percent of one CPU (200 = two CPUs); 0 = no limit
	TasksMax         uint64            // 0 = systemd default
	Slice            string            // e.g. "jupyterhub.slice"; "" = systemd default
	Sandbox          Sandbox
	DeviceAllow      []string // e.g. "/dev/nvidia0 rw"; non-empty also sets DevicePolicy=closed
	// DevicePolicy is systemd's DevicePolicy=: "" leaves systemd's default ("auto": every device
	// node the file modes allow, unless DeviceAllow is set); "closed" allows only the standard
	// pseudo devices (/dev/null, /dev/zero, /dev/random, ttys, ...) and DeviceAllow; "strict"
	// only DeviceAllow.
	DevicePolicy string
	// RequiresMountsFor are absolute paths (an NFS home) whose mount units the server needs:
	// systemd starts the server after them and stops it if one of them is stopped.
	RequiresMountsFor []string
}

// Sandbox holds the systemd.exec(5) hardening switches the hub exposes.
type Sandbox struct {
	PrivateTmp      bool
	NoNewPrivileges bool
	ProtectSystem   string // "", "true", "full" or "strict"
	// PrivateHome, if set, is the user's home: the unit sees it and no other home. /home, /root
	// and /run/user become empty tmpfs (ProtectHome=tmpfs) with this one directory bound back in
	// (BindPaths=), so other users' files are out of reach whatever their modes.
	PrivateHome string
	// UMask is the server's umask in octal, e.g. "0077"; "" leaves systemd's 0022.
	UMask string
}

// State is a unit's state as systemd reports it; it is the lifecycle core's own type, so the
// Manager serves the core as its servers.Units.
type State = servers.UnitState

// Options configures a Manager.
type Options struct {
	EnvDir     string       // directory for the per-unit EnvironmentFiles (created 0700 if missing); "" = /run/jupyterhub-go/env
	UnitPrefix string       // default "jupyter"
	Logger     *slog.Logger // nil = slog.Default()
}

// Manager starts, stops and inspects user server units. It is safe for
// concurrent use.
type Manager struct {
	conn   *sd.Conn
	envDir string
	prefix string
	log    *slog.Logger
}

// Connect opens a connection to systemd on the system bus.
func Connect(ctx context.Context, opts Options) (*Manager, error) {
	m := &Manager{envDir: opts.EnvDir, prefix: opts.UnitPrefix, log: opts.Logger}
	if m.envDir == "" {
		m.envDir = defaultEnvDir
	}
	if m.prefix == "" {
		m.prefix = defaultPrefix
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if !validPrefix(m.prefix) {
		return nil, fmt.Errorf("spawner: unit prefix %q: use only letters, digits and : _ . -", m.prefix)
	}
	if err := os.MkdirAll(m.envDir, 0o700); err != nil {
		return nil, fmt.Errorf("spawner: env dir: %w", err)
	}
	conn, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("spawner: connect to systemd: %w", err)
	}
	m.conn = conn
	return m, nil
}

// dial connects to the system bus. godbus closes a connection when the
// context it was dialled with ends, so the connection gets a context that is
// never cancelled (Close ends it), and ctx only bounds the wait.
func dial(ctx context.Context) (*sd.Conn, error) {
	type result struct {
		conn *sd.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := sd.NewSystemConnectionContext(context.WithoutCancel(ctx))
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, context.Cause(ctx)
	}
}

// Conn is the manager's connection to systemd, for concerns that start units of their own (the
// nfs package's mount units) over the same bus connection.
func (m *Manager) Conn() *sd.Conn { return m.conn }

// Close closes the D-Bus connection. Running units are not affected.
func (m *Manager) Close() error {
	m.conn.Close()
	return nil
}

// Start writes the unit's environment file and starts the unit. It returns
// once systemd has executed the command (Type=exec), so a missing binary,
// user or working directory is reported here, with the unit's last journal
// lines in the error. If ctx ends first the unit may still come up; callers
// that give up should Stop it.
func (m *Manager) Start(ctx context.Context, spec Spec) error {
	if err := m.start(ctx, spec); err != nil {
		return fmt.Errorf("start unit %s: %w", spec.Unit, err)
	}
	return nil
}

func (m *Manager) start(ctx context.Context, spec Spec) error {
	props, err := unitProperties(spec)
	if err != nil {
		return err
	}
	envFile := envFilePath(m.envDir, spec.Unit)
	if err := writeEnvFile(envFile, spec.Env); err != nil {
		return fmt.Errorf("environment file: %w", err)
	}
	props = append(props, sd.Property{
		Name:  "EnvironmentFiles",
		Value: dbus.MakeVariant([]envFileEntry{{Path: envFile}}),
	})

	m.log.Info("starting unit", "unit", spec.Unit, "user", spec.User, "command", spec.Command)
	since := time.Now()
	ch := newJobChan()
	if _, err := m.conn.StartTransientUnitContext(ctx, spec.Unit, "fail", props, ch); err != nil {
		// systemd refused (e.g. the unit exists, and read its own environment
		// long ago), so no unit will read the file. If ctx ended instead, the
		// call may have reached systemd: keep the file for the unit, Stop
		// removes it.
		if ctx.Err() == nil {
			m.removeEnvFile(spec.Unit, envFile)
		}
		return err
	}
	result, err := waitJob(ctx, ch)
	if err != nil {
		return err
	}
	if result != "done" {
		m.removeEnvFile(spec.Unit, envFile) // the unit is dead and collected
		err := fmt.Errorf("job %s", result)
		if lines := m.failureLog(ctx, spec.Unit, since); len(lines) > 0 {
			err = fmt.Errorf("job %s: %s", result, strings.Join(lines, "; "))
		}
		return err
	}
	return nil
}

func (m *Manager) removeEnvFile(unit, path string) {
	if err := removeEnvFile(path); err != nil {
		m.log.Warn("remove env file", "unit", unit, "err", err)
	}
}

// envFileEntry is one element of the EnvironmentFiles a(sb) property; the
// bool means "ignore if missing", which we never want.
type envFileEntry struct {
	Path          string
	IgnoreMissing bool
}

// bindPath is one element of the BindPaths a(ssbt) property.
type bindPath struct {
	Source, Destination string
	IgnoreMissing       bool
	Flags               uint64
}

// msRec is MS_REC: submounts of the home (an NFS export below it) are bound too.
const msRec = 16384

// deviceAllowEntry is one element of the DeviceAllow a(ss) property.
type deviceAllowEntry struct {
	Path   string
	Access string
}

func unitProperties(spec Spec) ([]sd.Property, error) {
	if !validUnitName(spec.Unit) {
		return nil, fmt.Errorf("invalid unit name %q", spec.Unit)
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return nil, errors.New("empty command")
	}
	// An empty User= would silently run the server as root.
	if spec.User == "" {
		return nil, errors.New("no user given")
	}
	wd := spec.WorkingDirectory
	if wd == "" {
		wd = "~"
	}
	desc := spec.Description
	if desc == "" {
		desc = "Jupyter server for " + spec.User
	}
	p := []sd.Property{
		sd.PropDescription(desc),
		// exec, not simple: the start job then waits for execve(), so a
		// missing binary or user fails Start instead of a later poll.
		sd.PropType("exec"),
		// The bool in ExecStart is "ignore failure", not "unclean is failure"
		// as go-systemd names it; false keeps failures visible.
		sd.PropExecStart(spec.Command, false),
		prop("User", spec.User),
		prop("WorkingDirectory", wd),
		// Without this a failed unit lingers and blocks the next start
		// under the same name.
		prop("CollectMode", "inactive-or-failed"),
		prop("KillMode", "control-group"),
		prop("StandardOutput", "journal"),
		prop("StandardError", "journal"),
	}
	if spec.Group != "" {
		p = append(p, prop("Group", spec.Group))
	}
	if spec.Slice != "" {
		p = append(p, sd.PropSlice(spec.Slice))
	}
	if spec.MemoryMax > 0 {
		p = append(p, prop("MemoryMax", spec.MemoryMax))
	}
	if spec.CPUQuota != 0 {
		if spec.CPUQuota < 0 || math.IsNaN(spec.CPUQuota) || math.IsInf(spec.CPUQuota, 0) {
			return nil, fmt.Errorf("invalid CPU quota %v%%", spec.CPUQuota)
		}
		// CPUQuota=100% is one CPU second per second.
		p = append(p, prop("CPUQuotaPerSecUSec", uint64(math.Round(spec.CPUQuota*10000))))
	}
	if spec.TasksMax > 0 {
		p = append(p, prop("TasksMax", spec.TasksMax))
	}
	if spec.Sandbox.PrivateTmp {
		p = append(p, prop("PrivateTmp", true))
	}
	if spec.Sandbox.NoNewPrivileges {
		p = append(p, prop("NoNewPrivileges", true))
	}
	if spec.Sandbox.ProtectSystem != "" {
		p = append(p, prop("ProtectSystem", spec.Sandbox.ProtectSystem))
	}
	if home := spec.Sandbox.PrivateHome; home != "" {
		if !strings.HasPrefix(home, "/") {
			return nil, fmt.Errorf("home %q is not an absolute path", home)
		}
		// a(ssbt): source, destination, ignore a missing source, mount flags (MS_REC).
		p = append(p, prop("ProtectHome", "tmpfs"),
			prop("BindPaths", []bindPath{{Source: home, Destination: home, Flags: msRec}}))
	}
	if spec.Sandbox.UMask != "" {
		m, err := strconv.ParseUint(spec.Sandbox.UMask, 8, 32)
		if err != nil || m > 0o777 {
			return nil, fmt.Errorf("invalid umask %q: want octal such as 0077", spec.Sandbox.UMask)
		}
		p = append(p, prop("UMask", uint32(m)))
	}
	policy := spec.DevicePolicy
	switch policy {
	case "", "auto", "closed", "strict":
	default:
		return nil, fmt.Errorf("invalid DevicePolicy %q: use auto, closed or strict", policy)
	}
	if policy == "" && len(spec.DeviceAllow) > 0 {
		policy = "closed" // what systemd's "auto" means once DeviceAllow is set; said outright
	}
	if policy != "" {
		p = append(p, prop("DevicePolicy", policy))
	}
	if len(spec.RequiresMountsFor) > 0 {
		for _, p := range spec.RequiresMountsFor {
			if !strings.HasPrefix(p, "/") {
				return nil, fmt.Errorf("RequiresMountsFor path %q is not absolute", p)
			}
		}
		p = append(p, prop("RequiresMountsFor", spec.RequiresMountsFor))
	}
	if len(spec.DeviceAllow) > 0 {
		var devs []deviceAllowEntry
		for _, d := range spec.DeviceAllow {
			f := strings.Fields(d)
			if len(f) == 0 || len(f) > 2 {
				return nil, fmt.Errorf("invalid DeviceAllow entry %q", d)
			}
			access := "rwm"
			if len(f) == 2 {
				access = f[1]
			}
			devs = append(devs, deviceAllowEntry{Path: f[0], Access: access})
		}
		p = append(p, prop("DeviceAllow", devs))
	}
	return p, nil
}

func prop(name string, v any) sd.Property {
	return sd.Property{Name: name, Value: dbus.MakeVariant(v)}
}

// newJobChan makes the channel go-systemd reports a job result on. It is
// buffered because go-systemd sends from its single signal loop and blocks
// it until the send succeeds: a caller that gave up must not stall it.
func newJobChan() chan string { return make(chan string, 1) }

func waitJob(ctx context.Context, ch <-chan string) (string, error) {
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for systemd job: %w", context.Cause(ctx))
	}
}

// failureLog fetches the journal lines of a start that just failed. journald
// may lag behind the job result by a moment, so it retries briefly.
func (m *Manager) failureLog(ctx context.Context, unit string, since time.Time) []string {
	for range 5 {
		lines, err := m.journal(ctx, unit, 10, since)
		if err != nil {
			m.log.Debug("journal for failed unit", "unit", unit, "err", err)
			return nil
		}
		if len(lines) > 0 {
			return lines
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// Stop stops the unit, waits until it is down and removes its environment
// file. Stopping a unit that does not exist is not an error.
func (m *Manager) Stop(ctx context.Context, unit string) error {
	if err := m.stop(ctx, unit); err != nil {
		return fmt.Errorf("stop unit %s: %w", unit, err)
	}
	return nil
}

func (m *Manager) stop(ctx context.Context, unit string) error {
	if !validUnitName(unit) {
		return errors.New("invalid unit name")
	}
	m.log.Info("stopping unit", "unit", unit)
	ch := newJobChan()
	// replace: a stop must win over a start job still queued.
	_, err := m.conn.StopUnitContext(ctx, unit, "replace", ch)
	switch {
	case isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit"):
	case err != nil:
		return err
	default:
		result, err := waitJob(ctx, ch)
		if err != nil {
			return err
		}
		if result != "done" {
			return fmt.Errorf("job %s", result)
		}
	}
	return removeEnvFile(envFilePath(m.envDir, unit))
}

// State returns the unit's current state; a unit systemd does not know is
// reported as inactive.
func (m *Manager) State(ctx context.Context, unit string) (State, error) {
	gone := State{Unit: unit, ActiveState: "inactive"}
	if !validUnitName(unit) {
		return State{}, fmt.Errorf("unit state %s: invalid unit name", unit)
	}
	// One GetAll over all interfaces: a consistent snapshot of unit and
	// service properties in a single round trip.
	props, err := m.conn.GetAllPropertiesContext(ctx, unit)
	if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") ||
		isDBusError(err, "org.freedesktop.DBus.Error.UnknownObject") {
		return gone, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("unit state %s: %w", unit, err)
	}
	if ls, _ := props["LoadState"].(string); ls != "loaded" {
		return gone, nil
	}
	st := State{Unit: unit}
	st.ActiveState, _ = props["ActiveState"].(string)
	st.SubState, _ = props["SubState"].(string)
	st.Result, _ = props["Result"].(string)
	st.MainPID, _ = props["MainPID"].(uint32)
	return st, nil
}

// List returns the loaded units named "<prefix>-*.service". It fills only
// Unit, ActiveState and SubState (one D-Bus call for all units); use State
// for MainPID and Result.
func (m *Manager) List(ctx context.Context) ([]State, error) {
	units, err := m.conn.ListUnitsByPatternsContext(ctx, nil, []string{m.prefix + "-*.service"})
	if err != nil {
		return nil, fmt.Errorf("list units: %w", err)
	}
	out := make([]State, 0, len(units))
	for _, u := range units {
		if u.LoadState != "loaded" {
			continue
		}
		out = append(out, State{Unit: u.Name, ActiveState: u.ActiveState, SubState: u.SubState})
	}
	return out, nil
}

// Journal returns the unit's last lines of log written since since (the zero time: any), oldest
// first. journalctl takes whole seconds, so lines from earlier in since's second come too.
func (m *Manager) Journal(ctx context.Context, unit string, lines int, since time.Time) ([]string, error) {
	out, err := m.journal(ctx, unit, lines, since)
	if err != nil {
		return nil, fmt.Errorf("journal of %s: %w", unit, err)
	}
	return out, nil
}

// journal shells out to journalctl: sd-journal needs cgo, and this is a
// cold path.
func (m *Manager) journal(ctx context.Context, unit string, lines int, since time.Time) ([]string, error) {
	if !validUnitName(unit) {
		return nil, errors.New("invalid unit name")
	}
	if lines <= 0 {
		return nil, nil
	}
	args := []string{"-u", unit, "-n", strconv.Itoa(lines), "-o", "cat", "--no-pager", "-q"}
	if !since.IsZero() {
		args = append(args, "--since", "@"+strconv.FormatInt(since.Unix(), 10))
	}
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("journalctl: %w: %s", err, msg)
		}
		return nil, fmt.Errorf("journalctl: %w", err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}

func isDBusError(err error, name string) bool {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name == name
	}
	var pe *dbus.Error
	return errors.As(err, &pe) && pe.Name == name
}
