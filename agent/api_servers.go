package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// apiStartServer is POST /users/{name}/server: 201 once ready, 202 if it is still starting
// after spawner.slow_spawn_timeout, 400 if it already runs.
func (h *Hub) apiStartServer(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "servers")
	if !ok {
		return
	}
	var opts map[string]any
	if err := h.decodeJSON(w, r, &opts); err != nil {
		writeErr(w, err)
		return
	}
	raw, _ := json.Marshal(opts)
	if opts == nil {
		raw = nil
	}
	if err := h.freshLogin(r.Context(), u); errors.Is(err, ErrLoginExpired) {
		apiError(w, http.StatusForbidden, "%s's login at the identity provider has ended: they must log in again before their server can start", u.Name)
		return
	} else if err != nil {
		apiError(w, http.StatusBadGateway, "%v", err)
		return
	}
	prog, err := h.startServer(u, "", raw)
	if err != nil {
		writeErr(w, err)
		return
	}
	select {
	case <-prog.finished():
		if ev := prog.last(); ev.Failed {
			apiError(w, http.StatusInternalServerError, "%s", ev.Message)
			return
		}
		w.WriteHeader(http.StatusCreated)
	case <-time.After(h.cfg.Spawner.SlowSpawnTimeout.D()):
		w.WriteHeader(http.StatusAccepted)
	case <-r.Context().Done():
	}
}

// apiStopServer is DELETE /users/{name}/server: 204 once stopped, 202 while it is stopping.
func (h *Hub) apiStopServer(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "delete:servers")
	if !ok {
		return
	}
	sv, err := h.store.Server(r.Context(), u.ID, "")
	if err != nil {
		writeErr(w, err)
		return
	}
	if sv.State == store.Stopped {
		apiError(w, http.StatusBadRequest, "%s's server is not running", u.Name)
		return
	}
	done, err := h.stopServer(sv)
	if err != nil {
		writeErr(w, err)
		return
	}
	select {
	case <-done:
		w.WriteHeader(http.StatusNoContent)
	case <-time.After(h.cfg.Spawner.SlowSpawnTimeout.D()):
		w.WriteHeader(http.StatusAccepted)
	case <-r.Context().Done():
	}
}

// apiProgress streams spawn progress as server-sent events, as the spawn-pending page expects.
func (h *Hub) apiProgress(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "read:servers")
	if !ok {
		return
	}
	sv, err := h.store.Server(r.Context(), u.ID, "")
	if err != nil {
		writeErr(w, err)
		return
	}
	h.mu.Lock()
	prog := h.spawns[sv.ID]
	h.mu.Unlock()
	if prog == nil {
		if sv.State != store.Running {
			apiError(w, http.StatusBadRequest, "%s's server is not starting", u.Name)
			return
		}
		// Started before this hub process: all there is to say is that it is ready.
		prog = newSpawnProgress()
		prog.emit(h.readyEvent(sv))
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not hold events back
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	keepAlive := time.NewTicker(8 * time.Second)
	defer keepAlive.Stop()
	sent := 0
	for {
		events, changed, done := prog.since(sent)
		for _, ev := range events {
			b, _ := json.Marshal(ev)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
		}
		sent += len(events)
		rc.Flush()
		if done {
			return
		}
		select {
		case <-changed:
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, "\n\n"); err != nil {
				return
			}
			rc.Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// errConflict is a start or stop that does not fit the server's current state.
func errConflict(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}
