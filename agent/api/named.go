package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// Named servers (hub.allow_named_servers) share the default server's handlers in servers.go:
// the routes with {server} in them give its name, the others "". This file holds what only
// named servers need.

// targetServer is targetUser for one of the user's servers: a scope filtered to
// !server=<user>/<server> reaches that server only, as in JupyterHub. Named servers' routes
// answer 400 while they are off, as JupyterHub's do.
func (a *API) targetServer(w http.ResponseWriter, r *http.Request, c *auth.Caller, scope, server string) (store.User, bool) {
	if server != "" {
		if !a.cfg.Hub.AllowNamedServers {
			web.Error(w, http.StatusBadRequest, "Named servers are not enabled (hub.allow_named_servers)")
			return store.User{}, false
		}
		if err := servers.ValidServerName(server); err != nil {
			web.Error(w, http.StatusBadRequest, "%v", err)
			return store.User{}, false
		}
	}
	return a.targetUserFor(w, r, c, scope, server)
}

// namedServer is the record of a user's server: the default one always exists (it is made on
// first use), a named one only once it was started, and not after it was removed.
func (a *API) namedServer(r *http.Request, u store.User, name string) (store.Server, error) {
	if name == "" {
		return a.store.Server(r.Context(), u.ID, "")
	}
	sv, err := a.store.FindServer(r.Context(), u.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return sv, web.Errorf(http.StatusNotFound, "%s has no server named '%s'", u.Name, name)
	}
	return sv, err
}

// serverLabel names a server in messages: "alice's server", "alice:gpu".
func serverLabel(user, server string) string {
	if server == "" {
		return user + "'s server"
	}
	return user + ":" + server
}

// readsServers says whether the user model shows a servers dict: read:servers on the user, or
// on any one of their servers (then the dict holds just those), as JupyterHub's filters do.
func readsServers(set scopes.Set, user string, t scopes.Target) bool {
	if set.Allows("read:servers", t) {
		return true
	}
	for s := range set {
		if strings.HasPrefix(s, "read:servers!server="+user+"/") {
			return true
		}
	}
	return false
}
