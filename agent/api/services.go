package api

import (
	"net/http"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// The services API (jupyterhub/apihandlers/services.py): read-only, the services are the
// config's [[service]]s.

// serviceModel is JupyterHub's service model with the fields the caller's scopes may read.
// The hub starts no services, so command and pid are empty as for JupyterHub's external ones.
func (a *API) serviceModel(sv *auth.Service, set scopes.Set) map[string]any {
	t := scopes.Target{Service: sv.Name}
	m := map[string]any{"kind": "service", "name": sv.Name}
	if set.Allows("read:services:name", t) || set.Allows("read:services", t) || set.Allows("read:roles:services", t) {
		m["admin"] = sv.Admin
	}
	if set.Allows("read:roles:services", t) {
		roles := sv.Roles
		if roles == nil {
			roles = []string{}
		}
		m["roles"] = roles
	}
	if set.Allows("read:services", t) {
		prefix := ""
		if sv.URL != "" {
			prefix = a.prefix + "/services/" + sv.Name + "/"
		}
		info := any(map[string]any{})
		if sv.Info != nil {
			info = sv.Info
		}
		m["url"], m["prefix"], m["command"], m["pid"] = sv.URL, prefix, []string{}, 0
		m["info"], m["display"] = info, sv.Display == nil || *sv.Display
	}
	return m
}

func (a *API) listServices(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes.HasAny("list:services") {
		web.Error(w, http.StatusForbidden, "requires scope list:services")
		return
	}
	// A JSON object by name, as JupyterHub's; filtered scopes see their own services only.
	out := map[string]any{}
	for _, sv := range a.gate.Services() {
		if c.Scopes.Allows("list:services", scopes.Target{Service: sv.Name}) {
			out[sv.Name] = a.serviceModel(sv, c.Scopes)
		}
	}
	web.JSON(w, http.StatusOK, out)
}

func (a *API) getService(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	name := r.PathValue("service")
	needed := []string{"read:services", "read:services:name", "read:roles:services"}
	holds, allowed := false, false
	for _, s := range needed {
		holds = holds || c.Scopes.HasAny(s)
		allowed = allowed || c.Scopes.Allows(s, scopes.Target{Service: name})
	}
	if !holds {
		web.Error(w, http.StatusForbidden, "requires scope %s", strings.Join(needed, " or "))
		return
	}
	sv := a.gate.ServiceByName(name)
	if sv == nil || !allowed {
		web.Error(w, http.StatusNotFound, "no such service %s", name)
		return
	}
	web.JSON(w, http.StatusOK, a.serviceModel(sv, c.Scopes))
}
