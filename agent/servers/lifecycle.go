package servers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Start marks a server as spawning and runs the pipeline in the background. If it is already
// spawning, the running spawn's progress is returned. opts are the user_options the server
// starts with.
func (m *Manager) Start(u store.User, name string, opts json.RawMessage) (*Progress, error) {
	ctx, asked := m.life, time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.mayHave(ctx, u, name); err != nil {
		return nil, err
	}
	sv, err := m.store.Server(ctx, u.ID, name)
	if err != nil {
		return nil, err
	}
	switch label := serverLabel(u.Name, name); sv.State {
	case store.Running:
		return nil, conflict("%s is already running", label)
	case store.Spawning:
		if p := m.spawns[sv.ID]; p != nil {
			m.opts.Observer.SpawnFinished(SpawnAlreadyPending, time.Since(asked)) // as JupyterHub times it: this request's
			return p, nil
		}
		return nil, conflict("%s is starting", label)
	case store.Stopping:
		return nil, conflict("%s is stopping; start it again once it has stopped", label)
	}
	port, err := m.pickPort(ctx)
	if err != nil {
		return nil, err
	}
	sv.State, sv.Port, sv.Started, sv.UserOptions = store.Spawning, port, time.Time{}, opts
	sv.Unit = m.opts.UnitName(u.Name, name)
	if err := m.store.SaveServer(ctx, sv); err != nil {
		return nil, err
	}
	prog := NewProgress()
	// The start timeout is a clock that a step waiting in a queue stops (Job.Queued), so the
	// spawn's context is a cancel context that the clock cancels with DeadlineExceeded as cause.
	spawnCtx, cancel := context.WithCancelCause(ctx)
	clock := newStartClock(m.opts.StartTimeout, func() { cancel(context.DeadlineExceeded) })
	prog.cancel = func() { cancel(context.Canceled) }
	m.spawns[sv.ID] = prog
	m.log.Info("spawn requested", "user", u.Name, "server", name, "unit", sv.Unit, "port", port)
	go m.spawn(spawnCtx, cancel, clock, u, sv, prog)
	return prog, nil
}

func (m *Manager) spawn(ctx context.Context, cancel context.CancelCauseFunc, clock *startClock, u store.User, sv store.Server, prog *Progress) {
	defer cancel(nil)
	defer clock.end()
	start := time.Now()
	prog.Step(0, "Server requested")
	// The job's own copy of what steps keep: sv, which the undo below gets, must see it too.
	sv.StepState = maps.Clone(sv.StepState)
	job := &Job{User: u, Server: sv, Env: map[string]string{}, UserOptions: sv.UserOptions, progress: prog, clock: clock, store: m.store}
	job.Server.StepState = maps.Clone(sv.StepState)
	failed := func(undoFrom int, stepName string, err error) {
		reason := err.Error()
		cancelled := errors.Is(ctx.Err(), context.Canceled) && !errors.Is(context.Cause(ctx), context.DeadlineExceeded)
		switch cause := context.Cause(ctx); {
		case ctx.Err() == nil:
		case errors.Is(cause, context.DeadlineExceeded):
			reason = fmt.Sprintf("%v (spawner.start_timeout is %s)", err, m.opts.StartTimeout)
		default:
			reason = "Spawn cancelled"
		}
		time.Sleep(300 * time.Millisecond) // let journald catch the unit's last words
		// Only this spawn's lines: a step before the unit (an NFS home) may fail before the
		// unit ever ran, and the server's log from its last run would explain nothing.
		journal, _ := m.units.Journal(context.WithoutCancel(ctx), sv.Unit, 20, start)
		m.log.Warn("spawn failed", "user", u.Name, "server", sv.Name, "step", stepName, "err", reason, "journal", strings.Join(journal, "\n"))
		undo := context.WithoutCancel(ctx)
		sv.StepState = job.Server.StepState
		for j := undoFrom; j >= 0; j-- {
			if err := m.stopStep(undo, m.steps[j], sv); err != nil {
				m.log.Warn("undo spawn step", "user", u.Name, "step", m.steps[j].Name(), "err", err)
			}
		}
		m.mu.Lock()
		if m.stops[sv.ID] == nil { // a stop in progress records the outcome itself
			sv.State = store.Stopped
			if err := m.store.SaveServer(undo, sv); err != nil {
				m.log.Error("record failed spawn", "user", u.Name, "err", err)
			}
		}
		m.mu.Unlock()
		ev := failedEvent(reason, journal)
		ev.Cancelled = cancelled
		m.opts.Observer.SpawnFinished(SpawnFailure, time.Since(start))
		prog.Emit(ev)
	}
	// Each step's time is logged at debug level: where a slow spawn's time went, step by step.
	for i, step := range m.steps {
		job.step = step.Name()
		began := time.Now()
		if err := step.Start(ctx, job); err != nil {
			failed(i, step.Name(), err)
			return
		}
		m.log.Debug("spawn step done", "user", u.Name, "server", sv.Name, "step", step.Name(), "ms", msSince(began))
		m.afterStep(step.Name(), "start")
	}
	began := time.Now()
	if err := m.waitUp(ctx, sv); err != nil {
		failed(len(m.steps)-1, "ready", err)
		return
	}
	m.log.Debug("spawn step done", "user", u.Name, "server", sv.Name, "step", "ready", "ms", msSince(began))
	m.afterStep("ready", "start")
	m.mu.Lock()
	if m.stops[sv.ID] != nil {
		// A stop came between the server answering and here: it owns the record now and tears
		// the steps down once this spawn has finished, so no route may appear for it.
		m.mu.Unlock()
		m.opts.Observer.SpawnFinished(SpawnFailure, time.Since(start))
		prog.Emit(Event{Progress: 100, Failed: true, Cancelled: true, Message: "Spawn cancelled: the server was stopped"})
		return
	}
	sv.State, sv.Started = store.Running, time.Now()
	err := m.store.SaveServer(context.WithoutCancel(ctx), sv)
	if err == nil {
		m.routes[routeKey(u.Name, sv.Name)] = Route{ServerID: sv.ID, Port: sv.Port}
	}
	m.mu.Unlock()
	if err != nil {
		m.opts.Observer.SpawnFinished(SpawnFailure, time.Since(start))
		prog.Emit(failedEvent(err.Error(), nil))
		return
	}
	m.opts.Observer.SpawnFinished(SpawnSuccess, time.Since(start))
	m.activity.touch(sv.ID)
	m.log.Info("server ready", "user", u.Name, "server", sv.Name, "unit", sv.Unit, "port", sv.Port, "seconds", time.Since(start).Seconds())
	prog.Emit(m.ReadyEvent(sv))
}

// msSince is the milliseconds since t, to a tenth: the unit of the spawn's step timings.
func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()/100) / 10 }

// ReadyEvent is the last event of a successful spawn.
func (m *Manager) ReadyEvent(sv store.Server) Event {
	u := m.FullURL(sv.UserName, sv.Name)
	return Event{
		Progress: 100, Ready: true, URL: u,
		Message:     "Server ready at " + u,
		HTMLMessage: fmt.Sprintf(`Server ready at <a href="%s">%s</a>`, html.EscapeString(u), html.EscapeString(u)),
	}
}

func failedEvent(reason string, journal []string) Event {
	ev := Event{Progress: 100, Failed: true, Message: "Spawn failed: " + reason}
	ev.HTMLMessage = "Spawn failed: " + html.EscapeString(reason)
	if len(journal) > 0 {
		ev.Message += "\nLast lines of the server's log:\n" + strings.Join(journal, "\n")
		ev.HTMLMessage += "<pre>" + html.EscapeString(strings.Join(journal, "\n")) + "</pre>"
	}
	return ev
}

// Readiness probes: a refused connection on loopback costs tens of microseconds, so the port is
// tried at a short fixed interval rather than a backoff, and a server is seen within one interval
// of listening however long it took to start. Fast servers are caught at the shorter one; past
// readyFastFor the interval doubles, which halves what twenty Python servers starting at once
// spend on probes and keeps the lag within ~10 ms. Asking systemd whether the unit died costs a
// D-Bus round trip, so that is done once a second, not per probe.
const (
	readyFastPoll = 5 * time.Millisecond
	readyFastFor  = 250 * time.Millisecond
	readyPoll     = 10 * time.Millisecond
	readyUnitPoll = time.Second
)

// waitUp polls the server's URL until it answers anything but a 5xx, as JupyterHub does, and
// gives up early if the unit dies.
func (m *Manager) waitUp(ctx context.Context, sv store.Server) error {
	u := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(sv.Port)) + m.URL(sv.UserName, sv.Name)
	client := &http.Client{
		// No keep-alive: the probe's connection would otherwise idle in a pool for the server's
		// first minute and a half, for nothing.
		Transport:     &http.Transport{DisableKeepAlives: true},
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	began := time.Now()
	lastCheck := began
	tick := time.NewTimer(readyFastPoll) // reset before each wait; the first probe does not wait
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if time.Since(lastCheck) >= readyUnitPoll {
			lastCheck = time.Now()
			st, err := m.poll(ctx, sv.Unit)
			if err == nil && !st.Running() {
				return fmt.Errorf("unit %s exited before the server answered (state %s/%s, result %s)", sv.Unit, st.ActiveState, st.SubState, st.Result)
			}
		}
		poll := readyPoll
		if time.Since(began) < readyFastFor {
			poll = readyFastPoll
		}
		tick.Reset(poll)
		select {
		case <-ctx.Done():
			return fmt.Errorf("server did not answer at %s: %w", u, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// Stop marks a server as stopping and tears it down in the background; the channel closes when
// it has stopped. A spawn in progress is cancelled first. Stopping a stopped server is done at once.
func (m *Manager) Stop(sv store.Server) (<-chan struct{}, error) {
	ctx := m.life
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch := m.stops[sv.ID]; ch != nil {
		return ch, nil
	}
	cur, err := m.store.Server(ctx, sv.UserID, sv.Name)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	if cur.State == store.Stopped {
		close(done)
		return done, nil
	}
	cur.State = store.Stopping
	if err := m.store.SaveServer(ctx, cur); err != nil {
		return nil, err
	}
	delete(m.routes, routeKey(cur.UserName, cur.Name))
	m.stops[cur.ID] = done
	prog := m.spawns[cur.ID]
	m.log.Info("stop requested", "user", cur.UserName, "server", cur.Name, "unit", cur.Unit)
	go func() {
		defer close(done)
		began := time.Now()
		if prog != nil {
			prog.cancel()
			<-prog.Finished()
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.StopTimeout)
		defer cancel()
		err := m.teardown(stopCtx, cur)
		// The outcome is recorded even when the teardown ran out of time: stopCtx may be over.
		record := context.WithoutCancel(stopCtx)
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.stops, cur.ID)
		delete(m.spawns, cur.ID)
		m.opts.Observer.StopFinished(err == nil, time.Since(began))
		if err != nil {
			m.log.Error("stop server", "user", cur.UserName, "server", cur.Name, "err", err)
			// The unit is still there (it stops first, so a step before it failing means it
			// is gone, and then the router's check finds that and stops again). Keep it
			// running and routed so nobody starts a second copy and its user can go on or
			// try the stop again.
			cur.State = store.Running
			if err := m.store.SaveServer(record, cur); err != nil {
				m.log.Error("record server that did not stop", "user", cur.UserName, "err", err)
			}
			m.routes[routeKey(cur.UserName, cur.Name)] = Route{ServerID: cur.ID, Port: cur.Port}
			return
		}
		cur.State = store.Stopped
		m.activity.forget(cur.ID)
		if err := m.store.SaveServer(record, cur); err != nil {
			m.log.Error("record stopped server", "user", cur.UserName, "err", err)
			return
		}
		m.usage.forget(cur.ID)
		m.log.Info("server stopped", "user", cur.UserName, "server", cur.Name)
	}()
	return done, nil
}

// teardown runs every step's stop in reverse order; the first failure ends it, so a unit that
// would not stop keeps its credentials.
func (m *Manager) teardown(ctx context.Context, sv store.Server) error {
	for i := len(m.steps) - 1; i >= 0; i-- {
		if err := m.stopStep(ctx, m.steps[i], sv); err != nil {
			return fmt.Errorf("%s: %w", m.steps[i].Name(), err)
		}
		m.afterStep(m.steps[i].Name(), "stop")
	}
	return nil
}

func (m *Manager) afterStep(step, half string) {
	if m.opts.AfterStep != nil {
		m.opts.AfterStep(step, half)
	}
}

// stopStep runs a step's stop half and then forgets what its start half kept (Job.KeepState):
// a stop that failed keeps it, for the next try.
func (m *Manager) stopStep(ctx context.Context, step Step, sv store.Server) error {
	if err := step.Stop(ctx, sv); err != nil {
		return err
	}
	if _, kept := sv.StepState[step.Name()]; kept {
		return m.store.SetStepState(ctx, sv.ID, step.Name(), "")
	}
	return nil
}

// pickPort finds a free loopback port in the port range that no other server holds.
func (m *Manager) pickPort(ctx context.Context) (int, error) {
	lo, hi := m.opts.PortLow, m.opts.PortHigh
	taken := map[int]bool{}
	servers, err := m.store.Servers(ctx, 0, true)
	if err != nil {
		return 0, err
	}
	for _, sv := range servers {
		taken[sv.Port] = true
	}
	for range 100 {
		p := lo + rand.IntN(hi-lo+1)
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port in spawner.port_range %d-%d", lo, hi)
}

// StopAll stops every server that is not stopped and waits until they have (or ctx ends).
func (m *Manager) StopAll(ctx context.Context) {
	all, err := m.store.Servers(ctx, 0, true)
	if err != nil {
		m.log.Error("list servers to stop", "err", err)
		return
	}
	var waits []<-chan struct{}
	for _, sv := range all {
		if done, err := m.Stop(sv); err == nil {
			waits = append(waits, done)
		}
	}
	for _, done := range waits {
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}
