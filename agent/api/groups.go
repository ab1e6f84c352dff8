package api

import (
	"errors"
	"net/http"
	"strings"
	"unicode"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// The groups API (jupyterhub/apihandlers/groups.py). Membership is each user's list of groups
// (see store.Group): with auth.manage_groups, logins overwrite what these endpoints change for
// groups the authenticator knows about, as in JupyterHub.

// registerGroups mounts /groups and below.
func (a *API) registerGroups(mux *http.ServeMux, api string) {
	mux.Handle(api+"/groups", a.authed(methods{"GET": a.listGroups, "POST": a.createGroups}))
	mux.Handle(api+"/groups/{group}", a.authed(methods{"GET": a.getGroup, "POST": a.createGroup, "DELETE": a.deleteGroup}))
	mux.Handle(api+"/groups/{group}/users", a.authed(methods{"POST": a.addGroupUsers, "DELETE": a.removeGroupUsers}))
	mux.Handle(api+"/groups/{group}/properties", a.authed(methods{"PUT": a.putGroupProperties}))
}

// validGroupName keeps names that fit a path segment and a scope filter. Group names come from
// Unix groups and identity-provider claims (Keycloak subgroups have '/', sent as %2F), so the
// rule is looser than for users.
func validGroupName(name string) error {
	if name == "" || len(name) > 255 || strings.ContainsFunc(name, unicode.IsControl) || strings.ContainsRune(name, '!') {
		return web.Errorf(http.StatusBadRequest, "invalid group name %q: 1 to 255 characters, no control characters or '!'", name)
	}
	return nil
}

// groupModel is JupyterHub's group model with the fields the caller's scopes may read.
func (a *API) groupModel(g store.Group, set scopes.Set) map[string]any {
	t := scopes.Target{Groups: []string{g.Name}}
	m := map[string]any{"kind": "group", "name": g.Name}
	if set.Allows("read:groups", t) {
		m["users"], m["properties"] = g.Users, g.Properties
	}
	if set.Allows("read:roles:groups", t) {
		m["roles"] = a.gate.GroupRoles(g.Name)
	}
	return m
}

// targetGroup loads the group named in the path for a caller holding one of needed on it. As
// targetUser: without any of the scopes 403; with them only for other groups, 404, the answer
// for a group that does not exist, so names cannot be probed.
func (a *API) targetGroup(w http.ResponseWriter, r *http.Request, c *auth.Caller, needed ...string) (store.Group, bool) {
	name := r.PathValue("group")
	if !a.mayOnGroup(w, c, name, needed...) {
		return store.Group{}, false
	}
	g, err := a.store.GetGroup(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		web.Error(w, http.StatusNotFound, "no such group %s", name)
		return g, false
	}
	if err != nil {
		a.writeErr(w, err)
		return g, false
	}
	return g, true
}

// mayOnGroup checks the caller holds one of needed on the group name, answering 400, 403 or 404.
func (a *API) mayOnGroup(w http.ResponseWriter, c *auth.Caller, name string, needed ...string) bool {
	if err := validGroupName(name); err != nil {
		a.writeErr(w, err)
		return false
	}
	holds := false
	for _, s := range needed {
		if c.Scopes.Allows(s, scopes.Target{Groups: []string{name}}) {
			return true
		}
		holds = holds || c.Scopes.HasAny(s)
	}
	if !holds {
		web.Error(w, http.StatusForbidden, "requires scope %s", strings.Join(needed, " or "))
		return false
	}
	web.Error(w, http.StatusNotFound, "no group %s within reach of this token's %s scope, or no such group", name, strings.Join(needed, "/"))
	return false
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes.HasAny("list:groups") {
		web.Error(w, http.StatusForbidden, "requires scope list:groups")
		return
	}
	offset, limit, paginated, err := a.paging(r)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	q := store.GroupQuery{Offset: offset, Limit: limit}
	if all, users, groups := c.Scopes.Reach("list:groups"); !all {
		if len(users) > 0 {
			// As JupyterHub: only !group= filters mean anything for groups, and
			// list:groups!user=x must not list every group.
			web.Error(w, http.StatusForbidden, "list:groups can only be filtered by group (list:groups!group=NAME)")
			return
		}
		q.Only = append([]string{}, groups...)
	}
	groups, total, err := a.store.ListGroups(r.Context(), q)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	items := make([]map[string]any, 0, len(groups))
	for _, g := range groups {
		items = append(items, a.groupModel(g, c.Scopes))
	}
	if !paginated {
		if total > offset+len(groups) {
			a.log.Info("truncated group list: ask with Accept: application/jupyterhub-pagination+json to page through all", "total", total, "limit", limit)
		}
		web.JSON(w, http.StatusOK, items)
		return
	}
	web.JSON(w, http.StatusOK, a.paginatedList(r, items, offset, limit, total))
}

// groupBody is what POST /groups and POST /groups/{name} take. JupyterHub 5.5 ignores
// properties there; they are accepted here so a group can be made in one call.
type groupBody struct {
	Name       string         `json:"name"` // in JupyterHub's model; the path decides
	Users      []string       `json:"users"`
	Properties map[string]any `json:"properties"`
	Roles      []string       `json:"roles"` // in JupyterHub's model; roles come from the config
}

// checkUsers answers 400 for a user who does not exist, as JupyterHub does.
func (a *API) checkUsers(w http.ResponseWriter, r *http.Request, names []string) bool {
	for _, n := range names {
		if _, err := a.store.GetUser(r.Context(), n); errors.Is(err, store.ErrNotFound) {
			web.Error(w, http.StatusBadRequest, "no such user: %s", n)
			return false
		} else if err != nil {
			a.writeErr(w, err)
			return false
		}
	}
	return true
}

func (a *API) createGroups(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes["admin:groups"] {
		web.Error(w, http.StatusForbidden, "requires scope admin:groups")
		return
	}
	var body struct {
		groupBody
		Groups []string `json:"groups"`
	}
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	if len(body.Groups) == 0 {
		web.Error(w, http.StatusBadRequest, "body must list the groups to create: {\"groups\": [...]}")
		return
	}
	for _, n := range body.Groups {
		if err := validGroupName(n); err != nil {
			a.writeErr(w, err)
			return
		}
		// All are checked first, so a conflict creates none of them.
		if _, err := a.store.GetGroup(r.Context(), n); err == nil {
			web.Error(w, http.StatusConflict, "group %s already exists", n)
			return
		}
	}
	if !a.checkUsers(w, r, body.Users) {
		return
	}
	created := []map[string]any{}
	for _, n := range body.Groups {
		g, err := a.store.CreateGroup(r.Context(), n, body.Properties, body.Users)
		if err != nil {
			a.writeErr(w, err)
			return
		}
		a.log.Info("group created", "group", n, "users", body.Users, "by", c.Name())
		created = append(created, a.groupModel(g, c.Scopes))
	}
	web.JSON(w, http.StatusCreated, created)
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	g, ok := a.targetGroup(w, r, c, "read:groups", "read:groups:name", "read:roles:groups")
	if !ok {
		return
	}
	web.JSON(w, http.StatusOK, a.groupModel(g, c.Scopes))
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	name := r.PathValue("group")
	if !a.mayOnGroup(w, c, name, "admin:groups") {
		return
	}
	var body groupBody
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	if !a.checkUsers(w, r, body.Users) {
		return
	}
	g, err := a.store.CreateGroup(r.Context(), name, body.Properties, body.Users)
	if errors.Is(err, store.ErrExists) {
		web.Error(w, http.StatusConflict, "group %s already exists", name)
		return
	}
	if err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("group created", "group", name, "users", body.Users, "by", c.Name())
	web.JSON(w, http.StatusCreated, a.groupModel(g, c.Scopes))
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	g, ok := a.targetGroup(w, r, c, "delete:groups")
	if !ok {
		return
	}
	if err := a.store.DeleteGroup(r.Context(), g.Name); err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("group deleted", "group", g.Name, "members", g.Users, "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) addGroupUsers(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	a.changeGroupUsers(w, r, c, true)
}

func (a *API) removeGroupUsers(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	a.changeGroupUsers(w, r, c, false)
}

func (a *API) changeGroupUsers(w http.ResponseWriter, r *http.Request, c *auth.Caller, add bool) {
	g, ok := a.targetGroup(w, r, c, "groups")
	if !ok {
		return
	}
	var body struct {
		Name  string    `json:"name"`
		Users *[]string `json:"users"`
		Roles []string  `json:"roles"`
	}
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	if body.Users == nil {
		web.Error(w, http.StatusBadRequest, "body must list the users: {\"users\": [...]}")
		return
	}
	if !a.checkUsers(w, r, *body.Users) {
		return
	}
	change, verb := a.store.AddGroupMembers, "added to group"
	if !add {
		change, verb = a.store.RemoveGroupMembers, "removed from group"
	}
	g, err := change(r.Context(), g.Name, *body.Users)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	if a.cfg.Auth.ManageGroups {
		a.log.Info("users "+verb+"; with auth.manage_groups their next login sets their groups again", "group", g.Name, "users", *body.Users, "by", c.Name())
	} else {
		a.log.Info("users "+verb, "group", g.Name, "users", *body.Users, "by", c.Name())
	}
	web.JSON(w, http.StatusOK, a.groupModel(g, c.Scopes))
}

func (a *API) putGroupProperties(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	g, ok := a.targetGroup(w, r, c, "groups")
	if !ok {
		return
	}
	var props map[string]any
	if err := a.decodeJSON(w, r, &props); err != nil {
		a.writeErr(w, err)
		return
	}
	if props == nil {
		web.Error(w, http.StatusBadRequest, "body must be the properties, a JSON object")
		return
	}
	g, err := a.store.SetGroupProperties(r.Context(), g.Name, props)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("group properties set", "group", g.Name, "by", c.Name())
	web.JSON(w, http.StatusOK, a.groupModel(g, c.Scopes))
}
