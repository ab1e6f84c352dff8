package gpu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Ledger keeps grants across hub restarts; the hub implements it on its sqlite store. Hold
// must be durable when it returns, because the unit starts right after. Release of a server
// without a grant is not an error.
type Ledger interface {
	Load(ctx context.Context) ([]Grant, error)
	Hold(ctx context.Context, g Grant) error
	Release(ctx context.Context, serverID int64) error
}

// Errors that Acquire's errors match with errors.Is.
var (
	// ErrBusy: the devices exist but others hold them (see *BusyError).
	ErrBusy = errors.New("no GPU free")
	// ErrQuota: the user would exceed the quota (see *QuotaError).
	ErrQuota = errors.New("GPU quota exceeded")
	// ErrUnavailable: this hub cannot satisfy the request however long it waits (GPUs
	// turned off, no such device on the host, more than the host has).
	ErrUnavailable = errors.New("GPU request cannot be met on this host")
)

// BusyError says that nothing fits right now. Its message is for the user; Detail, for
// admins, says who holds the rest, so a caller decides who sees it.
type BusyError struct {
	Request Request
	// Free and Total count the devices of the kind asked for.
	Free, Total int
	// Detail names the holders, e.g. "GPU 0, GPU 1: alice (server 3); GPU 2: bob/ml (server 9)".
	Detail string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("no GPU free: this server asks for %s and %d of %d %s free", e.Request, e.Free, e.Total, isAre(e.Free))
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// QuotaError says that granting the request would put the user over the quota.
type QuotaError struct {
	User string
	// Limit is the user's quota and Group the group it comes from ("" for gpu.default_quota).
	Limit int
	Group string
	// Held is what the user's other servers hold; Asked, what this one asks for.
	Held, Asked int
}

func (e *QuotaError) Error() string {
	from := "the default quota"
	if e.Group != "" {
		from = fmt.Sprintf("the quota of group %q", e.Group)
	}
	if e.Limit == 0 {
		return fmt.Sprintf("GPU quota exceeded: %s may not use GPUs (%s is 0)", e.User, from)
	}
	return fmt.Sprintf("GPU quota exceeded: %s may hold %s at a time (%s) and already holds %d; this server asks for %d more",
		e.User, plural(e.Limit, "GPU"), from, e.Held, e.Asked)
}

// Is makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

// AllocatorOptions configures NewAllocator.
type AllocatorOptions struct {
	Config Config
	// NVML is where the inventory and usage come from; unused when Config.Enabled is false.
	NVML   *NVML
	Ledger Ledger
	Logger *slog.Logger
}

// Allocator hands devices to servers; see the package documentation. It is safe for
// concurrent use.
type Allocator struct {
	cfg    Config
	nvml   *NVML
	ledger Ledger
	log    *slog.Logger

	mu     sync.Mutex
	inv    Inventory
	holds  map[int64]*hold
	queues map[string][]*waiter // by pool: "" for whole GPUs, else the MIG profile
}

// hold is one server's grant. pending is true between the in-memory reservation and the
// end of Ledger.Hold.
type hold struct {
	grant   Grant
	pending bool
}

// NewAllocator reads the inventory and the ledger. The grants in the ledger are held again
// at once, so nothing is handed out twice before Reconcile has run; grants on devices the
// host no longer lists are kept (their servers may still run) and logged.
func NewAllocator(ctx context.Context, opts AllocatorOptions) (*Allocator, error) {
	if opts.Ledger == nil {
		return nil, errors.New("gpu allocator: no ledger")
	}
	a := &Allocator{
		cfg: opts.Config, nvml: opts.NVML, ledger: opts.Ledger, log: opts.Logger,
		holds: map[int64]*hold{}, queues: map[string][]*waiter{},
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.cfg.Enabled {
		if a.nvml == nil {
			return nil, errors.New("gpu allocator: GPUs are enabled but no NVML was given")
		}
		inv, err := a.nvml.Inventory(ctx)
		if err != nil {
			// A broken driver must not keep the hub from starting: offer no GPUs until a
			// Refresh succeeds.
			a.log.Warn("no GPUs offered until the inventory can be read", "err", err)
		}
		a.inv = inv
	}
	grants, err := a.ledger.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("gpu allocator: load grants: %w", err)
	}
	for _, g := range grants {
		if prev, ok := a.holds[g.Holder.ServerID]; ok {
			a.log.Error("ledger lists two GPU grants for one server; keeping the first", "server", g.Holder, "kept", prev.grant.Devices, "ignored", g.Devices)
			continue
		}
		for _, d := range g.Devices {
			if other := a.holderOfLocked(d.UUID); other != nil {
				a.log.Error("ledger lists one GPU device for two servers", "device", d.String(), "uuid", d.UUID, "servers", []string{other.String(), g.Holder.String()})
			}
		}
		a.holds[g.Holder.ServerID] = &hold{grant: g}
		a.warnMissingLocked(g)
	}
	devs := a.inv.Devices()
	a.log.Info("GPU allocator ready", "enabled", a.cfg.Enabled, "devices", len(devs), "held", len(a.holds), "queue", a.cfg.Queue)
	return a, nil
}

// Inventory is the inventory the allocator works from (the one read last).
func (a *Allocator) Inventory() Inventory {
	a.mu.Lock()
	defer a.mu.Unlock()
	inv := a.inv
	inv.GPUs = slices.Clone(inv.GPUs)
	for i := range inv.GPUs {
		inv.GPUs[i].MIGDevices = slices.Clone(inv.GPUs[i].MIGDevices)
	}
	return inv
}

// Grants lists the grants held now, by server id.
func (a *Allocator) Grants() []Grant {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Grant, 0, len(a.holds))
	for _, h := range a.holds {
		out = append(out, h.grant.clone())
	}
	slices.SortFunc(out, func(x, y Grant) int { return cmp.Compare(x.Holder.ServerID, y.Holder.ServerID) })
	return out
}

// Grant returns what a server holds.
func (a *Allocator) Grant(serverID int64) (Grant, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.holds[serverID]
	if !ok {
		return Grant{}, false
	}
	return h.grant.clone(), true
}

// Acquire gives holder the devices req asks for and records the grant in the ledger before
// returning it, so the unit can start next. A zero request returns an empty grant at once
// and records nothing.
//
// A request that cannot be met on this host, or that puts the user over the quota, fails
// at once (ErrUnavailable, *QuotaError). When the devices exist but are held, Acquire fails
// with *BusyError, or in queue mode (Config.Queue) waits in line: onQueued, if not nil, is
// called from Acquire's goroutine with the position in the line (1 is next) when it queues
// and whenever the position changes; the device is taken as soon as one frees. Ending ctx
// leaves the line and returns ctx's error.
func (a *Allocator) Acquire(ctx context.Context, holder Holder, req Request, onQueued func(pos int)) (Grant, error) {
	req.MIGProfile = normalizeProfile(req.MIGProfile)
	if req.IsZero() {
		return Grant{Holder: holder}, nil
	}
	if err := ctx.Err(); err != nil {
		return Grant{}, fmt.Errorf("acquire GPUs for %s: %w", holder, err)
	}
	a.mu.Lock()
	if err := a.checkLocked(holder, req); err != nil {
		a.mu.Unlock()
		return Grant{}, err
	}
	pool := req.pool()
	if len(a.queues[pool]) == 0 {
		if devs := a.pickLocked(pool, req.count()); devs != nil {
			h := a.reserveLocked(holder, req, devs)
			a.mu.Unlock()
			return a.record(ctx, h)
		}
	}
	if !a.cfg.Queue {
		err := a.busyLocked(req)
		a.mu.Unlock()
		return Grant{}, err
	}
	w := a.enqueueLocked(holder, req)
	a.log.Info("GPU request queued", "server", holder, "request", req.String(), "position", w.pos)
	a.mu.Unlock()
	return a.wait(ctx, w, onQueued)
}

// checkLocked refuses, at once, requests that waiting cannot help.
func (a *Allocator) checkLocked(holder Holder, req Request) error {
	what := fmt.Sprintf("acquire %s for %s", req, holder)
	switch {
	case req.GPUs < 0:
		return fmt.Errorf("%s: a negative number of GPUs makes no sense", what)
	case req.GPUs > 0 && req.MIGProfile != "":
		return fmt.Errorf("%s: ask for whole GPUs or for a MIG profile, not both", what)
	case !a.cfg.Enabled:
		return fmt.Errorf("%s: %w: GPUs are turned off on this hub (gpu.enabled = false)", what, ErrUnavailable)
	}
	if h, ok := a.holds[holder.ServerID]; ok {
		return fmt.Errorf("%s: the server already holds %s; release it first", what, deviceList(h.grant.Devices))
	}
	if a.queuedLocked(holder.ServerID) {
		return fmt.Errorf("%s: the server is already waiting for a GPU", what)
	}
	if total := len(a.poolLocked(req.pool())); total < req.count() {
		return fmt.Errorf("%s: %w: %s", what, ErrUnavailable, a.shortfallLocked(req, total))
	}
	return a.quotaLocked(holder, req.Groups, req.count())
}

// shortfallLocked explains why the host cannot satisfy req, having total devices of its kind.
func (a *Allocator) shortfallLocked(req Request, total int) string {
	if len(a.inv.GPUs) == 0 {
		return "this host has no GPUs"
	}
	if req.MIGProfile != "" {
		if p := a.inv.Profiles(); len(p) > 0 {
			return fmt.Sprintf("this host has no MIG %s device (it has: %s)", req.pool(), strings.Join(p, ", "))
		}
		return fmt.Sprintf("this host has no MIG devices, so no MIG %s", req.pool())
	}
	if total == 0 {
		return fmt.Sprintf("all GPUs of this host are in MIG mode; ask for a MIG profile (%s)", strings.Join(a.inv.Profiles(), ", "))
	}
	return fmt.Sprintf("this server asks for %s and this host has %d to give whole", req, total)
}

// quotaLocked checks that the user may hold n more devices.
func (a *Allocator) quotaLocked(holder Holder, groups []string, n int) error {
	limit, group := a.cfg.quotaFor(groups)
	held := 0
	for _, h := range a.holds {
		if h.grant.Holder.User == holder.User {
			held += len(h.grant.Devices)
		}
	}
	if held+n > limit {
		return &QuotaError{User: holder.User, Limit: limit, Group: group, Held: held, Asked: n}
	}
	return nil
}

// poolLocked lists the devices of a pool in the order they are handed out: whole GPUs by
// index, MIG devices by GPU, GPU instance and compute instance.
func (a *Allocator) poolLocked(pool string) []Device {
	var out []Device
	for _, d := range a.inv.Devices() {
		if d.IsMIG() && d.Profile == pool || !d.IsMIG() && pool == "" {
			out = append(out, d)
		}
	}
	return out
}

// holderOfLocked returns who holds the device, or nil.
func (a *Allocator) holderOfLocked(uuid string) *Holder {
	for _, h := range a.holds {
		for _, d := range h.grant.Devices {
			if d.UUID == uuid {
				return &h.grant.Holder
			}
		}
	}
	return nil
}

// pickLocked chooses n free devices of a pool, or returns nil if fewer are free.
func (a *Allocator) pickLocked(pool string, n int) []Device {
	var free []Device
	for _, d := range a.poolLocked(pool) {
		if a.holderOfLocked(d.UUID) == nil {
			free = append(free, d)
			if len(free) == n {
				return free
			}
		}
	}
	return nil
}

// reserveLocked holds devs for holder in memory; record makes it durable.
func (a *Allocator) reserveLocked(holder Holder, req Request, devs []Device) *hold {
	req.Groups = nil // the quota is checked against the groups of the day, not stored ones
	h := &hold{grant: Grant{Holder: holder, Request: req, Devices: devs, Since: time.Now()}, pending: true}
	a.holds[holder.ServerID] = h
	return h
}

// record writes a reserved grant to the ledger. If that fails, or the grant was released
// while being written, the devices go back and the grant is not returned.
func (a *Allocator) record(ctx context.Context, h *hold) (Grant, error) {
	g := h.grant
	err := a.ledger.Hold(ctx, g)
	a.mu.Lock()
	current := a.holds[g.Holder.ServerID] == h
	switch {
	case current && err == nil:
		h.pending = false
		a.mu.Unlock()
		a.log.Info("GPU granted", "server", g.Holder, "devices", deviceList(g.Devices))
		return g.clone(), nil
	case current:
		delete(a.holds, g.Holder.ServerID)
		a.dispatchLocked()
		a.mu.Unlock()
		return Grant{}, fmt.Errorf("acquire %s for %s: record the grant: %w", g.Request, g.Holder, err)
	}
	a.mu.Unlock()
	if err == nil {
		// Released while being recorded: take the record back out.
		if rerr := a.ledger.Release(context.WithoutCancel(ctx), g.Holder.ServerID); rerr != nil {
			a.log.Warn("GPU grant released while being recorded; its record stays until the next reconcile", "server", g.Holder, "err", rerr)
		}
	}
	return Grant{}, fmt.Errorf("acquire %s for %s: the grant was released before it was recorded", g.Request, g.Holder)
}

// busyLocked builds the error for a request that does not fit now.
func (a *Allocator) busyLocked(req Request) *BusyError {
	pool := a.poolLocked(req.pool())
	e := &BusyError{Request: req, Total: len(pool)}
	type held struct {
		holder  Holder
		devices []Device
	}
	var byHolder []*held
	for _, d := range pool {
		h := a.holderOfLocked(d.UUID)
		if h == nil {
			e.Free++
			continue
		}
		i := slices.IndexFunc(byHolder, func(x *held) bool { return x.holder.ServerID == h.ServerID })
		if i < 0 {
			byHolder = append(byHolder, &held{holder: *h})
			i = len(byHolder) - 1
		}
		byHolder[i].devices = append(byHolder[i].devices, d)
	}
	parts := make([]string, len(byHolder))
	for i, h := range byHolder {
		parts[i] = deviceList(h.devices) + ": " + h.holder.String()
	}
	e.Detail = strings.Join(parts, "; ")
	if waiting := len(a.queues[req.pool()]); waiting > 0 {
		e.Detail += fmt.Sprintf("; %d waiting", waiting)
	}
	return e
}

// Release gives back what a server holds; a server without a grant is not an error. The
// ledger is updated first: if that fails the devices stay held (nothing is handed out
// twice), the error says so, and the next Reconcile or Release clears them.
func (a *Allocator) Release(ctx context.Context, serverID int64) error {
	a.mu.Lock()
	h, ok := a.holds[serverID]
	a.mu.Unlock()
	if !ok {
		return nil
	}
	if err := a.ledger.Release(ctx, serverID); err != nil {
		return fmt.Errorf("release GPUs of %s: %w (they stay held until released again or reconciled)", h.grant.Holder, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.holds[serverID] == h {
		delete(a.holds, serverID)
		a.log.Info("GPU released", "server", h.grant.Holder, "devices", deviceList(h.grant.Devices))
		a.dispatchLocked()
	}
	return nil
}

// Reconcile drops the grants of servers that no longer run: call it at hub start, once the
// units have been listed, with running holding the ids of the servers whose units run (and
// of any being started). Grants still being recorded are left alone. It returns the ledger
// errors; the grants they concern stay held.
func (a *Allocator) Reconcile(ctx context.Context, running map[int64]bool) error {
	a.mu.Lock()
	var stale []*hold
	for id, h := range a.holds {
		if !running[id] && !h.pending {
			stale = append(stale, h)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(stale, func(x, y *hold) int { return cmp.Compare(x.grant.Holder.ServerID, y.grant.Holder.ServerID) })

	var errs []error
	for _, h := range stale {
		id := h.grant.Holder.ServerID
		if err := a.ledger.Release(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("reconcile GPUs: drop stale grant of %s: %w", h.grant.Holder, err))
			continue
		}
		a.mu.Lock()
		if a.holds[id] == h {
			delete(a.holds, id)
			a.log.Info("stale GPU grant dropped: its server no longer runs", "server", h.grant.Holder, "devices", deviceList(h.grant.Devices))
		}
		a.mu.Unlock()
	}
	a.mu.Lock()
	a.dispatchLocked()
	a.mu.Unlock()
	return errors.Join(errs...)
}

// Refresh reads the inventory again (after an admin changed MIG instances, say). Held
// devices that are gone stay held by their servers and are logged; queued requests that
// the host can no longer meet fail.
func (a *Allocator) Refresh(ctx context.Context) error {
	if !a.cfg.Enabled {
		return nil
	}
	inv, err := a.nvml.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("refresh GPU inventory: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inv = inv
	for _, h := range a.holds {
		a.warnMissingLocked(h.grant)
	}
	a.dispatchLocked()
	return nil
}

// warnMissingLocked logs the devices of g that the inventory no longer lists.
func (a *Allocator) warnMissingLocked(g Grant) {
	devs := a.inv.Devices()
	for _, d := range g.Devices {
		if !slices.ContainsFunc(devs, func(x Device) bool { return x.UUID == d.UUID }) {
			a.log.Warn("a GPU grant holds a device this host no longer lists", "server", g.Holder, "device", d.String(), "uuid", d.UUID)
		}
	}
}

// Usage is one device with its holder and counters, for metrics and listings.
type Usage struct {
	Device Device
	Holder *Holder // nil when free
	Since  time.Time
	Sample
}

// MemoryTotal is the device's memory as NVML counts it now, or as the inventory recorded it
// when NVML has no counter.
func (u Usage) MemoryTotal() uint64 {
	if u.MemoryTotalBytes != 0 {
		return u.MemoryTotalBytes
	}
	return u.Device.MemoryBytes
}

// Usage lists every device of the inventory with who holds it and NVML's counters (zero
// where NVML has none).
func (a *Allocator) Usage(ctx context.Context) ([]Usage, error) {
	a.mu.Lock()
	var out []Usage
	for _, d := range a.inv.Devices() {
		u := Usage{Device: d}
		for _, h := range a.holds {
			if slices.ContainsFunc(h.grant.Devices, func(x Device) bool { return x.UUID == d.UUID }) {
				holder := h.grant.Holder
				u.Holder, u.Since = &holder, h.grant.Since
				break
			}
		}
		out = append(out, u)
	}
	a.mu.Unlock()
	for i := range out {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("read GPU usage: %w", err)
		}
		out[i].Sample = a.nvml.Sample(out[i].Device)
	}
	return out, nil
}

// deviceList is "GPU 0, GPU 1".
func deviceList(devs []Device) string {
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.String()
	}
	return strings.Join(names, ", ")
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
