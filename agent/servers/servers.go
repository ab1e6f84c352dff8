// Package servers is the server lifecycle core: the one owner of every user server's state, the
// route table the /user/ router reads, the progress of spawns and stops, and reconciling with the
// units that outlived a hub restart. The REST API, the pages, the OAuth provider and the router
// call it; none of them touches its lock or its maps.
//
// A server moves stopped → spawning → running → stopping → stopped. Each transition is written to
// the store before the side effect it announces, so a crash in between is visible, and repaired by
// Reconcile at the next start.
//
// # Spawn steps
//
// Starting a server runs an ordered list of Steps; each has a start half and a stop half, as in
// Nomad's task runner. Start halves run in order; when one fails, the stop halves of that step and
// every one before it run in reverse, and the failure is what the user reads on the progress
// stream. Stopping a server runs every stop half in reverse. A stop half must work from the stored
// server record alone (the hub may have restarted since the start half ran) and must be idempotent.
//
// To add a step (an NFS home, GPUs, a Vault token, ...):
//
//  1. In the concern's own package, write a type with Name, Start and Stop (see Step). Start may
//     add environment variables for the server to Job.Env and device nodes its unit may open to
//     Job.DeviceAllow, and report what it does with Job.Progress; Stop undoes it for a
//     store.Server.
//  2. Add one line for it in the step list in agent (spawnSteps in agent/wire.go), before the unit.
//
// A step can also change what the steps after it read: Job.UserOptions (the options the gpu step
// takes its request from) and Job.Unit (the command, environment and limits the unit step uses
// instead of [spawner]'s). The profile step (agent/profiles) does both; the record keeps the
// user's own user_options.
//
// A step whose stop half needs more than the server record (the accessor of a Vault token it
// made, say) keeps it with Job.KeepState: it is written to the store at once and comes back in
// store.Server.StepState[step name] for the stop half, after a restart too, and is forgotten
// once that stop half has succeeded.
//
// A step that needs the server's unit to wait for a mount adds the path to Job.RequiresMounts. A
// step whose state outlives one server (a mount all of a user's servers share) can also implement
// StepReconciler, to find that state again after a hub restart.
//
// TestStepsRunInOrderAndUndoInReverse in this package pins this contract down.
//
// # The start timeout and queues
//
// Options.StartTimeout (spawner.start_timeout) bounds a spawn from the request to the server
// answering HTTP, and its end cancels the context the steps run with (context.Cause is then
// context.DeadlineExceeded; a stop cancels it with context.Canceled). It measures the spawn's
// own work, not waiting for others: a step that waits in line for something other users hold
// (the gpu step, when every GPU is taken and gpu.queue is on) calls Job.Queued when it joins
// the line and the returned function when it leaves, and the timeout stands still in between,
// then runs on with what was left. The step keeps the same context throughout, so a stop still
// ends the wait. TestTimeInAQueueDoesNotCountAgainstTheStartTimeout pins this down.
package servers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Units is what the core needs of the unit manager beyond the spawn steps: reconciling after a
// restart, telling a dead server from a slow one, and the unit's last log lines for a failed spawn.
// The spawner package implements it over D-Bus.
type Units interface {
	List(ctx context.Context) ([]UnitState, error)
	State(ctx context.Context, unit string) (UnitState, error)
	Stop(ctx context.Context, unit string) error
	// Journal returns the unit's last lines of log written since since (the zero time: any).
	Journal(ctx context.Context, unit string, lines int, since time.Time) ([]string, error)
}

// UnitState is a unit's state as systemd reports it.
type UnitState struct {
	Unit        string
	ActiveState string // "active", "activating", "inactive", "failed", ...
	SubState    string
	Result      string
	MainPID     uint32
}

// Running reports whether the unit is up or on its way up.
func (s UnitState) Running() bool {
	switch s.ActiveState {
	case "active", "activating", "reloading":
		return true
	}
	return false
}

// Options configures a Manager.
type Options struct {
	Prefix       string                           // the hub's base URL without its trailing slash
	UnitName     func(user, server string) string // the unit a server runs as
	PortLow      int                              // servers listen on a loopback port in [PortLow, PortHigh]
	PortHigh     int
	StartTimeout time.Duration // bounds a whole spawn, from request to the server answering HTTP, less time queued (Job.Queued)
	StopTimeout  time.Duration // bounds stopping a server
	Hosts        UserHosts     // servers' own hosts (hub.subdomain_host); zero: paths on the hub's
	Observer     Observer      // told of spawns, stops and polls (the metrics); nil: nobody
	Usage        UsageReader   // what a server's unit uses now (its cgroup); nil: unknown
	Named        NamedServers  // whether users may have servers besides the default one (named.go)
	Logger       *slog.Logger
	// AfterStep, if set, is called each time a step's start or stop half has succeeded (half
	// "start" or "stop"; step "ready" once the server answers). It is the seam the crash tests
	// kill the hub at (agent's JHGO_CRASH_AFTER), to show that a hub dying between any two
	// steps leaves nothing behind once it starts again.
	AfterStep func(step, half string)
}

// Route is where a running server listens.
type Route struct {
	ServerID int64
	Port     int
}

// ErrConflict is a start or stop that does not fit the server's current state.
var ErrConflict = errors.New("conflict")

func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConflict}, args...)...)
}

// Manager owns the lifecycle of every user server.
type Manager struct {
	opts  Options
	log   *slog.Logger
	store *store.Store
	units Units
	steps []Step

	// life is the hub's lifetime: spawns and stops outlive the request that asked for them.
	life context.Context

	mu     sync.Mutex          // guards the maps below and every read-modify-write of a server's state
	routes map[string]Route    // "user/server" → running server
	spawns map[int64]*Progress // server id → progress of its current or last spawn
	stops  map[int64]chan struct{}

	activity *activityLog
	usage    *usageLog
}

// New makes a Manager; steps is the spawn pipeline in order. Nothing runs until Start or Reconcile.
func New(life context.Context, st *store.Store, units Units, steps []Step, opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = noObserver{}
	}
	return &Manager{
		opts: opts, log: opts.Logger, store: st, units: units, steps: steps, life: life,
		routes:   map[string]Route{},
		spawns:   map[int64]*Progress{},
		stops:    map[int64]chan struct{}{},
		activity: newActivityLog(),
		usage:    newUsageLog(),
	}
}

func routeKey(user, server string) string { return user + "/" + server }

// URL is the path a server is served under, e.g. "/user/alice/" or "/user/alice/gpu/".
func URL(prefix, user, server string) string {
	u := prefix + "/user/" + user + "/"
	if server != "" {
		u += server + "/"
	}
	return u
}

// URL is the path a server is served under on this hub.
func (m *Manager) URL(user, server string) string { return URL(m.opts.Prefix, user, server) }

// FullURL is where a browser finds a server: its path, on the user's own host when servers have
// one (hub.subdomain_host).
func (m *Manager) FullURL(user, server string) string {
	return m.opts.Hosts.Origin(user) + m.URL(user, server)
}

// Hosts is where servers live when each has a host of its own.
func (m *Manager) Hosts() UserHosts { return m.opts.Hosts }

// Route says where a running server listens; false if it is not running (or not yet ready).
func (m *Manager) Route(user, server string) (Route, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rt, ok := m.routes[routeKey(user, server)]
	return rt, ok
}

// RouteEntry is one row of the route table.
type RouteEntry struct {
	User, Server string
	Route
}

// Routes lists every running server's route.
func (m *Manager) Routes() []RouteEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]RouteEntry, 0, len(m.routes))
	for key, rt := range m.routes {
		for i := 0; i < len(key); i++ {
			if key[i] == '/' {
				out = append(out, RouteEntry{User: key[:i], Server: key[i+1:], Route: rt})
				break
			}
		}
	}
	return out
}

// Progress returns the progress of a server's current or last spawn in this hub process, or nil.
func (m *Manager) Progress(serverID int64) *Progress {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spawns[serverID]
}

// LastFailure is why a stopped server's last spawn failed, if it did.
func (m *Manager) LastFailure(sv store.Server) (string, bool) {
	if sv.State != store.Stopped {
		return "", false
	}
	if p := m.Progress(sv.ID); p != nil {
		if ev := p.Last(); ev.Failed {
			return ev.Message, true
		}
	}
	return "", false
}

// Touch records traffic to a server; the activity is written to the store in batches.
func (m *Manager) Touch(serverID int64) { m.activity.touch(serverID) }

// Run does the periodic chores until ctx ends: writing activity, expiring old credentials. The
// activity seen last is written before it returns.
func (m *Manager) Run(ctx context.Context) {
	flush := time.NewTicker(15 * time.Second)
	expire := time.NewTicker(time.Hour)
	defer flush.Stop()
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			m.activity.flush(shut, m.store, m.log)
			cancel()
			return
		case <-flush.C:
			m.activity.flush(ctx, m.store, m.log)
		case <-expire.C:
			if err := m.store.Expire(ctx); err != nil {
				m.log.Warn("expire credentials", "err", err)
			}
		}
	}
}

// Check looks at a server the router could not reach; if its unit is gone, the server is
// recorded as stopped and its steps' stop halves run.
func (m *Manager) Check(serverID int64) {
	ctx, cancel := context.WithTimeout(m.life, 10*time.Second)
	defer cancel()
	sv, err := m.store.ServerByID(ctx, serverID)
	if err != nil || sv.State != store.Running {
		return
	}
	st, err := m.poll(ctx, sv.Unit)
	if err != nil || st.Running() {
		return
	}
	m.log.Warn("server's unit is gone; marking it stopped", "user", sv.UserName, "unit", sv.Unit, "state", st.ActiveState)
	m.Stop(sv)
}

// poll asks systemd for a unit's state, timed for the observer (JupyterHub's server poll); a
// failed question is no answer and is not counted.
func (m *Manager) poll(ctx context.Context, unit string) (UnitState, error) {
	start := time.Now()
	st, err := m.units.State(ctx, unit)
	if err == nil {
		m.opts.Observer.Polled(st.Running(), time.Since(start))
	}
	return st, err
}
