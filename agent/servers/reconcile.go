package servers

import (
	"context"
	"fmt"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Reconcile makes the store and systemd agree after a (re)start: units with a running record are
// adopted again, so their routes work at once and no one has to respawn; records without a unit,
// stops that a crash interrupted and spawns it cut short are stopped, through the same teardown
// as any stop (the steps' stop halves release credentials, ...); units nobody knows are stopped.
//
// Steps that keep state of their own (StepReconciler) are reconciled last.
//
// Only the adopting happens before Reconcile returns: the stops run in the background, as Stop's
// do, so that a unit that ignores SIGTERM for the whole stop timeout does not keep the hub (and
// the router everyone else needs) from listening. Until a stop is done its server reads as
// stopping.
func (m *Manager) Reconcile(ctx context.Context) error {
	began := time.Now()
	units, err := m.units.List(ctx)
	if err != nil {
		return fmt.Errorf("list units: %w", err)
	}
	live := map[string]bool{}
	for _, u := range units {
		live[u.Unit] = u.Running()
	}
	servers, err := m.store.Servers(ctx, 0, true)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	adopted, stopping := 0, 0
	for _, sv := range servers {
		known[sv.Unit] = true
		switch {
		case sv.State == store.Running && live[sv.Unit]:
			m.mu.Lock()
			m.routes[routeKey(sv.UserName, sv.Name)] = Route{ServerID: sv.ID, Port: sv.Port}
			m.mu.Unlock()
			adopted++
			m.log.Info("adopted running server", "user", sv.UserName, "server", sv.Name, "unit", sv.Unit, "port", sv.Port)
			continue
		case sv.State == store.Spawning && live[sv.Unit]:
			// The hub died mid-spawn: the unit may still come up, but its progress and
			// timeout died with the old process. Start over cleanly rather than guess.
			m.log.Warn("server was mid-spawn when the hub stopped; stopping it so it can be started cleanly", "user", sv.UserName, "unit", sv.Unit)
		case live[sv.Unit]:
			m.log.Info("finishing interrupted stop", "user", sv.UserName, "unit", sv.Unit)
		default:
			m.log.Warn("server's unit is gone; marking it stopped", "user", sv.UserName, "unit", sv.Unit, "was", sv.State)
		}
		if _, err := m.Stop(sv); err != nil {
			m.log.Error("stop server", "user", sv.UserName, "err", err)
		}
		stopping++
	}
	for _, u := range units {
		if !known[u.Unit] {
			m.log.Warn("stopping unit that no server record owns", "unit", u.Unit)
			go func() {
				stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.StopTimeout)
				defer cancel()
				if err := m.units.Stop(stopCtx, u.Unit); err != nil {
					m.log.Error("stop unowned unit", "unit", u.Unit, "err", err)
				}
			}()
		}
	}
	for _, step := range m.steps {
		if r, ok := step.(StepReconciler); ok {
			if err := r.ReconcileStep(ctx); err != nil {
				m.log.Error("reconcile spawn step", "step", step.Name(), "err", err)
			}
		}
	}
	m.opts.Observer.Reconciled(time.Since(began))
	m.log.Info("reconciled with systemd", "adopted", adopted, "stopping", stopping, "records", len(servers), "units", len(units))
	return nil
}
