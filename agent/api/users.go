package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// userModel builds JupyterHub's user model, with only the fields the caller's scopes may read.
func (a *API) userModel(ctx context.Context, u store.User, set scopes.Set, includeStopped bool) (map[string]any, error) {
	ms, err := a.userModels(ctx, []store.User{u}, set, includeStopped)
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// userModels builds the user models of a page of users, reading what they need beyond the
// users themselves (servers, auth state) for the whole page at once: a page costs the same
// few statements whatever its size.
func (a *API) userModels(ctx context.Context, users []store.User, set scopes.Set, includeStopped bool) ([]map[string]any, error) {
	ids := make([]int64, len(users))
	var sealed []store.User // those whose auth state the caller may read
	for i, u := range users {
		ids[i] = u.ID
		if set.Allows("admin:auth_state", scopes.Target{User: u.Name, Groups: u.Groups}) {
			sealed = append(sealed, u)
		}
	}
	servers, err := a.store.ServersOfUsers(ctx, ids, !includeStopped)
	if err != nil {
		return nil, err
	}
	states := a.gate.AuthStates(ctx, sealed)
	out := make([]map[string]any, len(users))
	for i, u := range users {
		out[i] = a.buildUserModel(ctx, u, set, servers[u.ID], states[u.ID])
	}
	return out, nil
}

// buildUserModel is one user's model from what userModels read.
func (a *API) buildUserModel(ctx context.Context, u store.User, set scopes.Set, servers []store.Server, authState any) map[string]any {
	t := scopes.Target{User: u.Name, Groups: u.Groups}
	// Sized for a full model's fields at once rather than grown field by field.
	m := make(map[string]any, 16)
	m["kind"], m["name"] = "user", u.Name
	roles := a.gate.UserRoles(u)
	var def *store.Server
	for i := range servers {
		if servers[i].Name == "" {
			def = &servers[i]
		}
	}
	if set.Allows("read:users:name", t) {
		m["admin"] = u.Admin
	}
	if set.Allows("read:users:groups", t) {
		m["groups"] = u.Groups
	}
	if set.Allows("read:users:activity", t) {
		m["last_activity"] = web.ISOTime(u.LastActivity)
	}
	if set.Allows("read:roles:users", t) {
		m["roles"], m["admin"] = roles, u.Admin
	}
	if set.Allows("read:users", t) {
		m["admin"], m["roles"], m["created"] = u.Admin, roles, web.ISOTime(u.Created)
		m["server"], m["pending"] = nil, nil
		if def != nil && def.State != store.Stopped {
			m["pending"] = pendingOf(def.State)
			if def.State == store.Running {
				m["server"] = a.servers.URL(u.Name, "")
			}
		}
		m["auth_state"] = nil
	}
	if set.Allows("admin:auth_state", t) {
		m["auth_state"] = authState
	}
	if readsServers(set, u.Name, t) {
		sm := map[string]any{}
		for _, sv := range servers {
			st := scopes.Target{User: u.Name, Groups: u.Groups, Server: sv.Name, HasServer: true}
			if set.Allows("read:servers", st) {
				sm[sv.Name] = a.serverModel(ctx, sv, set.Allows("admin:server_state", st))
			}
		}
		m["servers"] = sm
	}
	return m
}

func pendingOf(state string) any {
	switch state {
	case store.Spawning:
		return "spawn"
	case store.Stopping:
		return "stop"
	}
	return nil
}

func (a *API) serverModel(ctx context.Context, sv store.Server, withState bool) map[string]any {
	progress := a.prefix + "/hub/api/users/" + sv.UserName + "/server/progress"
	if sv.Name != "" {
		progress = a.prefix + "/hub/api/users/" + sv.UserName + "/servers/" + sv.Name + "/progress"
	}
	opts := any(map[string]any{})
	if len(sv.UserOptions) > 0 {
		opts = sv.UserOptions
	}
	m := map[string]any{
		"name":              sv.Name,
		"full_name":         sv.UserName + "/" + sv.Name,
		"last_activity":     web.ISOTime(sv.LastActivity),
		"started":           web.ISOTime(sv.Started),
		"pending":           pendingOf(sv.State),
		"ready":             sv.State == store.Running,
		"stopped":           sv.State == store.Stopped,
		"url":               a.servers.URL(sv.UserName, sv.Name),
		"user_options":      opts,
		"progress_url":      progress,
		"full_url":          nil,
		"full_progress_url": nil,
	}
	if hosts := a.servers.Hosts(); hosts.On() {
		m["full_url"], m["full_progress_url"] = a.servers.FullURL(sv.UserName, sv.Name), hosts.HubOrigin()+progress
	} else if a.cfg.Hub.PublicURL != "" {
		// As JupyterHub: the full URLs are known only once the hub knows its public URL.
		base := strings.TrimSuffix(a.cfg.Hub.PublicURL, "/")
		if u, err := url.Parse(base); err == nil {
			base = u.Scheme + "://" + u.Host
		}
		m["full_url"], m["full_progress_url"] = base+m["url"].(string), base+progress
	}
	if withState {
		// The spawner's state, as JupyterHub shows a spawner's get_state(): where the server
		// runs, the GPUs it holds and, while it runs, what its unit's cgroup uses now.
		state := map[string]any{"unit": sv.Unit, "port": sv.Port, "gpus": a.heldGPUs(sv.ID), "usage": nil}
		if u, ok := a.servers.ServerUsage(ctx, sv); ok {
			state["usage"] = usageModel(u)
		}
		m["state"] = state
	}
	return m
}

// usageModel is a server's usage in JSON: memory in bytes, CPU time in seconds, and the share
// of one CPU it used since cpu_percent_since (an earlier reading, or its start).
func usageModel(u servers.ServerUsage) map[string]any {
	return map[string]any{
		"memory_bytes":      u.MemoryBytes,
		"cpu_seconds":       u.CPU.Seconds(),
		"cpu_percent":       u.CPUPercent,
		"cpu_percent_since": web.ISOTime(u.CPUSince),
		"at":                web.ISOTime(u.At),
	}
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes.HasAny("list:users") {
		web.Error(w, http.StatusForbidden, "requires scope list:users")
		return
	}
	offset, limit, paginated, err := a.paging(r)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", "active", "ready", "inactive":
	default:
		web.Error(w, http.StatusBadRequest, "state must be one of active, ready, inactive; not %q", state)
		return
	}
	sort := q.Get("sort")
	switch sort {
	case "", "id", "-id", "name", "-name", "last_activity", "-last_activity":
	default:
		web.Error(w, http.StatusBadRequest, "sort must be id, name or last_activity, optionally with a leading '-'")
		return
	}
	query := store.UserQuery{Offset: offset, Limit: limit, State: state, NameFilter: q.Get("name_filter"), Sort: sort}
	if all, names, groups := c.Scopes.Reach("list:users"); !all {
		// Page through the users this caller may list, not through everyone with gaps.
		query.Only = &store.Reach{Names: names, Groups: groups}
	}
	users, total, err := a.store.ListUsers(r.Context(), query)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	listed := users[:0:0]
	for _, u := range users {
		if c.Scopes.Allows("list:users", scopes.Target{User: u.Name, Groups: u.Groups}) {
			listed = append(listed, u) // filtered scopes see only their own users
		}
	}
	items, err := a.userModels(r.Context(), listed, c.Scopes, boolQuery(q, "include_stopped_servers"))
	if err != nil {
		a.writeErr(w, err)
		return
	}
	if !paginated {
		if total > offset+len(users) {
			a.log.Info("truncated user list: ask with Accept: application/jupyterhub-pagination+json to page through all", "total", total, "limit", limit)
		}
		web.JSON(w, http.StatusOK, items)
		return
	}
	web.JSON(w, http.StatusOK, a.paginatedList(r, items, offset, limit, total))
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "read:users:name")
	if !ok {
		return
	}
	m, err := a.userModel(r.Context(), u, c.Scopes, boolQuery(r.URL.Query(), "include_stopped_servers"))
	if err != nil {
		a.writeErr(w, err)
		return
	}
	web.JSON(w, http.StatusOK, m)
}

func (a *API) createUsers(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes["admin:users"] {
		web.Error(w, http.StatusForbidden, "requires scope admin:users")
		return
	}
	var body struct {
		Usernames []string  `json:"usernames"`
		Admin     bool      `json:"admin"`
		Groups    *[]string `json:"groups"`
	}
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	if len(body.Usernames) == 0 {
		web.Error(w, http.StatusBadRequest, "body must list the users to create: {\"usernames\": [...]}")
		return
	}
	for _, name := range body.Usernames {
		if err := web.ValidName(name); err != nil {
			a.writeErr(w, err)
			return
		}
	}
	created := []map[string]any{}
	for _, name := range body.Usernames {
		u, err := a.store.CreateUser(r.Context(), name, body.Admin)
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if err == nil && body.Groups != nil {
			u, err = a.store.UpdateUser(r.Context(), name, store.UserPatch{Groups: body.Groups})
		}
		if err != nil {
			a.writeErr(w, err)
			return
		}
		a.log.Info("user created", "user", name, "admin", body.Admin, "by", c.Name())
		m, _ := a.userModel(r.Context(), u, c.Scopes, false)
		created = append(created, m)
	}
	if len(created) == 0 {
		web.Error(w, http.StatusConflict, "all of these users already exist")
		return
	}
	web.JSON(w, http.StatusCreated, created)
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	name := r.PathValue("name")
	if !c.Scopes["admin:users"] {
		web.Error(w, http.StatusForbidden, "requires scope admin:users")
		return
	}
	if err := web.ValidName(name); err != nil {
		a.writeErr(w, err)
		return
	}
	var body struct {
		Name   string    `json:"name"` // JupyterHub's user model has it; the path decides
		Admin  bool      `json:"admin"`
		Groups *[]string `json:"groups"`
	}
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	u, err := a.store.CreateUser(r.Context(), name, body.Admin)
	if err == nil && body.Groups != nil {
		u, err = a.store.UpdateUser(r.Context(), name, store.UserPatch{Groups: body.Groups})
	}
	if err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("user created", "user", name, "admin", body.Admin, "by", c.Name())
	m, _ := a.userModel(r.Context(), u, c.Scopes, false)
	web.JSON(w, http.StatusCreated, m)
}

func (a *API) patchUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "admin:users")
	if !ok {
		return
	}
	var body struct {
		Name   *string   `json:"name"`
		Admin  *bool     `json:"admin"`
		Groups *[]string `json:"groups"`
	}
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	if body.Name != nil {
		if err := web.ValidName(*body.Name); err != nil {
			a.writeErr(w, err)
			return
		}
		if *body.Name != u.Name {
			// A running server's unit, cookies and OAuth client carry the old name.
			if active, _ := a.store.Servers(r.Context(), u.ID, true); len(active) > 0 {
				web.Error(w, http.StatusBadRequest, "stop %s's servers before renaming", u.Name)
				return
			}
		}
	}
	u, err := a.store.UpdateUser(r.Context(), u.Name, store.UserPatch{Name: body.Name, Admin: body.Admin, Groups: body.Groups})
	if errors.Is(err, store.ErrExists) {
		web.Error(w, http.StatusBadRequest, "user %s already exists", *body.Name) // JupyterHub: 400, not 409
		return
	}
	if err != nil {
		a.writeErr(w, err)
		return
	}
	m, _ := a.userModel(r.Context(), u, c.Scopes, false)
	web.JSON(w, http.StatusOK, m)
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "delete:users")
	if !ok {
		return
	}
	if u.ID == c.User.ID {
		web.Error(w, http.StatusBadRequest, "cannot delete yourself")
		return
	}
	servers, err := a.store.Servers(r.Context(), u.ID, true)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	for _, sv := range servers {
		if sv.State == store.Stopping {
			web.Error(w, http.StatusBadRequest, "%s's server is still stopping; try again shortly", u.Name)
			return
		}
		done, err := a.servers.Stop(sv)
		if err != nil {
			a.writeErr(w, err)
			return
		}
		select {
		case <-done:
		case <-time.After(a.cfg.Spawner.StopTimeout.D()):
			web.Error(w, http.StatusBadRequest, "%s's server did not stop in time; try again shortly", u.Name)
			return
		}
	}
	if err := a.store.DeleteUser(r.Context(), u.Name); err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("user deleted", "user", u.Name, "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
}

// activity is how single-user servers report that someone used them.
func (a *API) activity(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "users:activity")
	if !ok {
		return
	}
	var body struct {
		LastActivity *web.Time `json:"last_activity"`
		Servers      map[string]struct {
			LastActivity *web.Time `json:"last_activity"`
		} `json:"servers"`
	}
	if err := a.decodeJSON(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	if body.LastActivity == nil && body.Servers == nil {
		web.Error(w, http.StatusBadRequest, "body needs last_activity and/or servers")
		return
	}
	check := func(t *web.Time) bool {
		if t != nil && time.Until(t.Time) > 59*time.Minute {
			web.Error(w, http.StatusBadRequest, "last_activity %s is in the future", t.Format(time.RFC3339))
			return false
		}
		return true
	}
	if !check(body.LastActivity) {
		return
	}
	servers, err := a.store.Servers(r.Context(), u.ID, false)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	byName := map[string]store.Server{}
	for _, sv := range servers {
		byName[sv.Name] = sv
	}
	for name, s := range body.Servers {
		if _, ok := byName[name]; !ok {
			web.Error(w, http.StatusBadRequest, "no such server %q for user %s", name, u.Name)
			return
		}
		if !check(s.LastActivity) {
			return
		}
	}
	for name, s := range body.Servers {
		if s.LastActivity != nil {
			if err := a.store.TouchServer(r.Context(), byName[name].ID, s.LastActivity.Time); err != nil {
				a.writeErr(w, err)
				return
			}
		}
	}
	if body.LastActivity != nil {
		if err := a.store.TouchUser(r.Context(), u.ID, body.LastActivity.Time); err != nil {
			a.writeErr(w, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}
