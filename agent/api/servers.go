package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// startServer is POST /users/{name}/server: 201 once ready, 202 if it is still starting
// after spawner.slow_spawn_timeout, 400 if it already runs.
func (a *API) startServer(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	name := r.PathValue("server") // "" on the default server's routes
	u, ok := a.targetServer(w, r, c, "servers", name)
	if !ok {
		return
	}
	var opts map[string]any
	err := a.decodeJSON(w, r, &opts)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	raw, _ := json.Marshal(opts)
	if opts == nil {
		raw = nil
	}
	if raw, err = a.chooseProfile(r.Context(), u, name, raw); err != nil {
		a.writeErr(w, err)
		return
	}
	if err := a.gate.FreshLogin(r.Context(), u); errors.Is(err, auth.ErrLoginExpired) {
		web.Error(w, http.StatusForbidden, "%s's login at the identity provider has ended: they must log in again before their server can start", u.Name)
		return
	} else if err != nil {
		web.Error(w, http.StatusBadGateway, "%v", err)
		return
	}
	prog, err := a.servers.Start(u, name, raw)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	select {
	case <-prog.Finished():
		if ev := prog.Last(); ev.Cancelled {
			// Someone stopped it while it started: nothing went wrong in the hub.
			web.Error(w, http.StatusBadRequest, "%s's server was stopped while it was starting", u.Name)
			return
		} else if ev.Failed {
			web.Error(w, http.StatusInternalServerError, "%s", ev.Message)
			return
		}
		w.WriteHeader(http.StatusCreated)
	case <-time.After(a.cfg.Spawner.SlowSpawnTimeout.D()):
		w.WriteHeader(http.StatusAccepted)
	case <-r.Context().Done():
	}
}

// stopServer is DELETE /users/{name}/server: 204 once stopped, 202 while it is stopping.
// With {"remove": true} a named server's record goes too, once it has stopped.
func (a *API) stopServer(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	name := r.PathValue("server")
	u, ok := a.targetServer(w, r, c, "delete:servers", name)
	if !ok {
		return
	}
	var body struct {
		Remove bool `json:"remove"`
	}
	if err := a.decodeJSON(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	if body.Remove && name == "" {
		web.Error(w, http.StatusBadRequest, "Cannot delete the default server")
		return
	}
	sv, err := a.namedServer(r, u, name)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	if sv.State == store.Stopped && !body.Remove {
		w.WriteHeader(http.StatusNoContent) // as JupyterHub: already where the caller wants it
		return
	}
	stop := a.servers.Stop
	if body.Remove {
		stop = a.servers.Remove
	}
	done, err := stop(sv)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	select {
	case <-done:
		w.WriteHeader(http.StatusNoContent)
	case <-time.After(a.cfg.Spawner.SlowSpawnTimeout.D()):
		w.WriteHeader(http.StatusAccepted)
	case <-r.Context().Done():
	}
}

// progress streams spawn progress as server-sent events, as the spawn-pending page expects.
func (a *API) progress(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	name := r.PathValue("server")
	u, ok := a.targetServer(w, r, c, "read:servers", name)
	if !ok {
		return
	}
	sv, err := a.namedServer(r, u, name)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	prog := a.servers.Progress(sv.ID)
	if prog == nil {
		if sv.State != store.Running {
			web.Error(w, http.StatusBadRequest, "%s is not starting", serverLabel(u.Name, name))
			return
		}
		// Started before this hub process: all there is to say is that it is ready.
		prog = servers.NewProgress()
		prog.Emit(a.servers.ReadyEvent(sv))
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
		events, changed, done := prog.Since(sent)
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
