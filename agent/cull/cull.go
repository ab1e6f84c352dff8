// Package cull is the hub's built-in culler: it stops servers nobody uses, and servers past a
// maximum age, through the lifecycle core (agent/servers), and optionally removes users who
// have had no server and no activity for as long.
//
// # What counts as activity
//
// Python JupyterHub's culler trusts one last_activity per server, made of the proxy's traffic
// and the single-user server's activity posts. Both count an open browser tab, which polls its
// server's API every few seconds and holds kernel WebSockets open, and neither sees a kernel
// that is busy without output (a cell that sleeps or trains for an hour): its last message was
// when the cell began. So a forgotten tab keeps a GPU for days while a long computation is
// killed.
//
// This culler asks the server itself. Every jupyter_server (and the classic notebook server)
// lists its kernels at /api/kernels with each kernel's execution_state ("busy" while a cell
// runs) and last_activity (the last message the kernel sent: output, a status change), and its
// terminals at /api/terminals with their last_activity. The hub reaches the server on loopback,
// not through its own router (which would count the check as traffic), with a token it makes for
// the purpose: owned by the server's user, with only that server's access scope, tied to the
// server so that stopping it revokes the token, just as the server's own API token is. The
// single-user server checks it against /hub/api/user like any other token. The activity posts
// (POST /hub/api/users/{name}/activity) were the other candidate; they carry the server's
// web_app.last_activity(), which mixes the API polling of open tabs into the kernels' times and
// cannot say "busy", so they are only the fallback when the server cannot be asked.
//
// A server is then busy if any kernel is busy, and otherwise idle since the latest of: its
// start, this hub's start (what the router saw before a restart is gone), a request someone
// made on purpose through the router (a page load, a save, a script's call: see
// servers.Manager.Interacted), and its kernels' and terminals' last activity. With
// cull.open_tabs_are_activity, every request through the router and the server's activity
// posts count too, as in Python JupyterHub.
//
// cull.max_age stops a server that old whatever it does, and applies to every server: it is what
// keeps a server from outliving the Vault token it was given. cull_admin_servers and
// cull_named_servers exempt from idle culling only.
//
// jupyterhub-idle-culler keeps working beside or instead of this one: it only needs the REST API
// (see agent/api's TestIdleCullerAPI).
package cull

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Options is the [cull] section as the culler takes it.
type Options struct {
	Timeout             time.Duration // idle for this long: stopped
	Every               time.Duration // how often to look
	MaxAge              time.Duration // this old: stopped; 0: no limit
	CullAdminServers    bool
	CullNamedServers    bool
	RemoveUsers         bool // delete users with no server and no activity for Timeout
	Concurrency         int  // servers looked at (and stopped) at once
	DryRun              bool // log what would be culled, do nothing
	OpenTabsAreActivity bool
	Logger              *slog.Logger
}

// Core is what the culler needs of the lifecycle core: it stops servers only through it.
type Core interface {
	Stop(sv store.Server) (<-chan struct{}, error)
	Activity(serverID int64) servers.Activity
}

// Work is what a server's kernels and terminals are doing, as the server reports it.
type Work struct {
	Busy bool      // a kernel is executing
	Last time.Time // the latest activity of any kernel or terminal; zero if it has none
}

// Kernels asks a server what its kernels are doing (see ServerKernels).
type Kernels interface {
	Work(ctx context.Context, sv store.Server) (Work, error)
}

// Culler looks at the servers every Options.Every.
type Culler struct {
	opts    Options
	log     *slog.Logger
	store   *store.Store
	core    Core
	kernels Kernels
	since   time.Time // when this hub process began watching
}

// New makes a culler; nothing happens until Run or Pass.
func New(st *store.Store, core Core, kernels Kernels, opts Options) *Culler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	return &Culler{opts: opts, log: opts.Logger, store: st, core: core, kernels: kernels, since: time.Now()}
}

// Run culls every Options.Every until ctx ends.
func (c *Culler) Run(ctx context.Context) {
	c.log.Info("culler running", "timeout", c.opts.Timeout, "every", c.opts.Every, "max_age", c.opts.MaxAge,
		"dry_run", c.opts.DryRun, "open_tabs_are_activity", c.opts.OpenTabsAreActivity)
	tick := time.NewTicker(c.opts.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.Pass(ctx, time.Now())
		}
	}
}

// Decision is what one pass decided about one server or user.
type Decision struct {
	User, Server string // Server "" with RemovedUser: the user was (or would be) removed
	RemovedUser  bool
	Reason       string
	DryRun       bool
}

// Pass looks at every running server once, as at now, stops those it should (waiting for the
// stops, Options.Concurrency at a time), then removes idle users if configured, and says what
// it culled.
func (c *Culler) Pass(ctx context.Context, now time.Time) []Decision {
	svs, err := c.store.Servers(ctx, 0, true)
	if err != nil {
		c.log.Error("culler: list servers", "err", err)
		return nil
	}
	var owners []int64
	for _, sv := range svs {
		owners = append(owners, sv.UserID)
	}
	// Whether each owner is an admin, for cull.admin_servers: one statement for the pass.
	users, err := c.store.UsersByID(ctx, owners)
	if err != nil {
		c.log.Error("culler: look up the servers' users", "err", err)
		return nil
	}
	var (
		mu  sync.Mutex
		out []Decision
		wg  sync.WaitGroup
	)
	sem := make(chan struct{}, c.opts.Concurrency)
	for _, sv := range svs {
		if sv.State != store.Running {
			continue // a spawn or a stop is under way: not ours to judge
		}
		u, ok := users[sv.UserID]
		if !ok {
			c.log.Warn("culler: the server's user is gone", "user", sv.UserName)
			continue
		}
		admin := u.Admin
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return out
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if d, ok := c.server(ctx, now, sv, admin); ok {
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if c.opts.RemoveUsers {
		out = append(out, c.users(ctx, now)...)
	}
	return out
}

// server judges one server and stops it if it should go.
func (c *Culler) server(ctx context.Context, now time.Time, sv store.Server, admin bool) (Decision, bool) {
	var work Work
	var werr error
	if c.kernels != nil && c.mayIdle(sv, admin) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		work, werr = c.kernels.Work(wctx, sv)
		cancel()
		if werr != nil {
			c.log.Warn("culler: cannot ask the server about its kernels; judging it by its activity posts", "user", sv.UserName, "server", sv.Name, "err", werr)
		}
	}
	reason, cull := c.judge(now, sv, admin, c.core.Activity(sv.ID), work, werr)
	if !cull {
		return Decision{}, false
	}
	d := Decision{User: sv.UserName, Server: sv.Name, Reason: reason, DryRun: c.opts.DryRun}
	if c.opts.DryRun {
		c.log.Info("culler: would stop server (cull.dry_run)", "user", sv.UserName, "server", sv.Name, "reason", reason)
		return d, true
	}
	c.log.Info("culler: stopping server", "user", sv.UserName, "server", sv.Name, "reason", reason)
	done, err := c.core.Stop(sv)
	if err != nil {
		c.log.Error("culler: stop server", "user", sv.UserName, "server", sv.Name, "err", err)
		return Decision{}, false
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return d, true
}

// mayIdle says whether idle culling applies to the server at all.
func (c *Culler) mayIdle(sv store.Server, admin bool) bool {
	return (sv.Name == "" || c.opts.CullNamedServers) && (!admin || c.opts.CullAdminServers)
}

// judge decides about one server from what is known of it at now; the reason says why it goes.
func (c *Culler) judge(now time.Time, sv store.Server, admin bool, act servers.Activity, work Work, werr error) (string, bool) {
	if age := now.Sub(sv.Started); c.opts.MaxAge > 0 && !sv.Started.IsZero() && age >= c.opts.MaxAge {
		return fmt.Sprintf("running for %s, cull.max_age is %s", round(age), c.opts.MaxAge), true
	}
	if !c.mayIdle(sv, admin) || werr == nil && work.Busy {
		return "", false
	}
	last, what := latest(
		at{sv.Started, "started"}, at{c.since, "hub started"},
		at{act.Interaction, "request"}, at{work.Last, "kernel or terminal"},
	)
	if c.opts.OpenTabsAreActivity || werr != nil {
		last, what = latest(at{last, what}, at{sv.LastActivity, "activity reported"}, at{act.Traffic, "traffic"})
	}
	idle := now.Sub(last)
	if idle < c.opts.Timeout {
		return "", false
	}
	return fmt.Sprintf("idle for %s (last activity: %s at %s), cull.timeout is %s", round(idle), what, last.UTC().Format(time.RFC3339), c.opts.Timeout), true
}

type at struct {
	t    time.Time
	what string
}

func latest(times ...at) (time.Time, string) {
	var best at
	for _, a := range times {
		if a.t.After(best.t) {
			best = a
		}
	}
	return best.t, best.what
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }

// users removes users who have no server running and did nothing for Options.Timeout, as
// jupyterhub-idle-culler --cull-users does.
func (c *Culler) users(ctx context.Context, now time.Time) []Decision {
	var out []Decision
	const page = 200
	var idle []store.User
	for off := 0; ; off += page {
		us, total, err := c.store.ListUsers(ctx, store.UserQuery{State: "inactive", Offset: off, Limit: page})
		if err != nil {
			c.log.Error("culler: list users without servers", "err", err)
			return out
		}
		for _, u := range us {
			if u.Admin && !c.opts.CullAdminServers {
				continue
			}
			last := u.LastActivity
			if last.IsZero() {
				last = u.Created
			}
			if now.Sub(last) >= c.opts.Timeout {
				idle = append(idle, u)
			}
		}
		if off+page >= total {
			break
		}
	}
	for _, u := range idle {
		reason := fmt.Sprintf("no server and no activity since %s, cull.timeout is %s", lastOf(u).UTC().Format(time.RFC3339), c.opts.Timeout)
		d := Decision{User: u.Name, RemovedUser: true, Reason: reason, DryRun: c.opts.DryRun}
		if c.opts.DryRun {
			c.log.Info("culler: would remove user (cull.dry_run)", "user", u.Name, "reason", reason)
			out = append(out, d)
			continue
		}
		// A server may have been started since the list was read.
		if svs, err := c.store.Servers(ctx, u.ID, true); err != nil || len(svs) > 0 {
			continue
		}
		if err := c.store.DeleteUser(ctx, u.Name); err != nil {
			c.log.Error("culler: remove user", "user", u.Name, "err", err)
			continue
		}
		c.log.Info("culler: removed user (cull.remove_users)", "user", u.Name, "reason", reason)
		out = append(out, d)
	}
	return out
}

func lastOf(u store.User) time.Time {
	if u.LastActivity.IsZero() {
		return u.Created
	}
	return u.LastActivity
}
