package agent

import (
	"context"
	"fmt"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// reconcile makes the database and systemd agree after a (re)start: units with a running record
// are adopted again, so their routes work at once and no one has to respawn; records without a
// unit are marked stopped and their credentials released; units nobody knows are stopped.
func (h *Hub) reconcile(ctx context.Context) error {
	units, err := h.units.List(ctx)
	if err != nil {
		return fmt.Errorf("list units: %w", err)
	}
	live := map[string]bool{}
	for _, u := range units {
		live[u.Unit] = u.Running()
	}
	servers, err := h.store.Servers(ctx, 0, true)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	adopted := 0
	for _, sv := range servers {
		known[sv.Unit] = true
		switch {
		case sv.State == store.Running && live[sv.Unit]:
			h.mu.Lock()
			h.routes[routeKey(sv.UserName, sv.Name)] = route{serverID: sv.ID, port: sv.Port}
			h.mu.Unlock()
			adopted++
			h.log.Info("adopted running server", "user", sv.UserName, "server", sv.Name, "unit", sv.Unit, "port", sv.Port)
		case sv.State == store.Spawning && live[sv.Unit]:
			// The hub died mid-spawn: the unit may still come up, but its progress and
			// timeout died with the old process. Start over cleanly rather than guess.
			h.log.Warn("server was mid-spawn when the hub stopped; stopping it so it can be started cleanly", "user", sv.UserName, "unit", sv.Unit)
			h.finishStop(ctx, sv)
		default:
			if live[sv.Unit] {
				h.log.Info("finishing interrupted stop", "user", sv.UserName, "unit", sv.Unit)
			} else {
				h.log.Warn("server's unit is gone; marking it stopped", "user", sv.UserName, "unit", sv.Unit, "was", sv.State)
			}
			h.finishStop(ctx, sv)
		}
	}
	for _, u := range units {
		if !known[u.Unit] {
			h.log.Warn("stopping unit that no server record owns", "unit", u.Unit)
			if err := h.units.Stop(ctx, u.Unit); err != nil {
				h.log.Error("stop unowned unit", "unit", u.Unit, "err", err)
			}
		}
	}
	h.log.Info("reconciled with systemd", "adopted", adopted, "records", len(servers), "units", len(units))
	return nil
}

// finishStop runs every step's stop synchronously and records the server as stopped.
func (h *Hub) finishStop(ctx context.Context, sv store.Server) {
	if err := h.teardown(ctx, sv); err != nil {
		h.log.Error("stop server", "user", sv.UserName, "err", err)
		return
	}
	sv.State = store.Stopped
	if err := h.store.SaveServer(ctx, sv); err != nil {
		h.log.Error("record stopped server", "user", sv.UserName, "err", err)
	}
}
