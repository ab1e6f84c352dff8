package agent

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// userModel builds JupyterHub's user model, with only the fields the caller's scopes may read.
func (h *Hub) userModel(ctx context.Context, u store.User, set scopes.Set, includeStopped bool) (map[string]any, error) {
	t := scopes.Target{User: u.Name, Groups: u.Groups}
	m := map[string]any{"kind": "user", "name": u.Name}
	roles := []string{"user"}
	if u.Admin {
		roles = append(roles, "admin")
	}
	servers, err := h.store.Servers(ctx, u.ID, !includeStopped)
	if err != nil {
		return nil, err
	}
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
		m["last_activity"] = isoTime(u.LastActivity)
	}
	if set.Allows("read:roles:users", t) {
		m["roles"], m["admin"] = roles, u.Admin
	}
	if set.Allows("read:users", t) {
		m["admin"], m["roles"], m["created"] = u.Admin, roles, isoTime(u.Created)
		m["server"], m["pending"] = nil, nil
		if def != nil && def.State != store.Stopped {
			m["pending"] = pendingOf(def.State)
			if def.State == store.Running {
				m["server"] = h.serverURL(u.Name, "")
			}
		}
		m["auth_state"] = nil
	}
	if set.Allows("admin:auth_state", t) {
		m["auth_state"] = h.authStateModel(ctx, u)
	}
	if set.Allows("read:servers", t) {
		sm := map[string]any{}
		for _, sv := range servers {
			sm[sv.Name] = h.serverModel(sv, set.Allows("admin:server_state", t))
		}
		m["servers"] = sm
	}
	return m, nil
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

func (h *Hub) serverURL(user, server string) string {
	u := h.prefix + "/user/" + user + "/"
	if server != "" {
		u += server + "/"
	}
	return u
}

func (h *Hub) serverModel(sv store.Server, withState bool) map[string]any {
	progress := h.prefix + "/hub/api/users/" + sv.UserName + "/server/progress"
	if sv.Name != "" {
		progress = h.prefix + "/hub/api/users/" + sv.UserName + "/servers/" + sv.Name + "/progress"
	}
	opts := any(map[string]any{})
	if len(sv.UserOptions) > 0 {
		opts = sv.UserOptions
	}
	m := map[string]any{
		"name":              sv.Name,
		"full_name":         sv.UserName + "/" + sv.Name,
		"last_activity":     isoTime(sv.LastActivity),
		"started":           isoTime(sv.Started),
		"pending":           pendingOf(sv.State),
		"ready":             sv.State == store.Running,
		"stopped":           sv.State == store.Stopped,
		"url":               h.serverURL(sv.UserName, sv.Name),
		"user_options":      opts,
		"progress_url":      progress,
		"full_url":          nil,
		"full_progress_url": nil,
	}
	if withState {
		m["state"] = map[string]any{"unit": sv.Unit, "port": sv.Port}
	}
	return m
}

func (h *Hub) apiListUsers(w http.ResponseWriter, r *http.Request, c *caller) {
	if !c.scopes.HasAny("list:users") {
		apiError(w, http.StatusForbidden, "requires scope list:users")
		return
	}
	offset, limit, paginated, err := paging(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", "active", "ready", "inactive":
	default:
		apiError(w, http.StatusBadRequest, "state must be one of active, ready, inactive; not %q", state)
		return
	}
	sort := q.Get("sort")
	switch sort {
	case "", "id", "-id", "name", "-name", "last_activity", "-last_activity":
	default:
		apiError(w, http.StatusBadRequest, "sort must be id, name or last_activity, optionally with a leading '-'")
		return
	}
	users, total, err := h.store.ListUsers(r.Context(), store.UserQuery{
		Offset: offset, Limit: limit, State: state, NameFilter: q.Get("name_filter"), Sort: sort,
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	items := []map[string]any{}
	for _, u := range users {
		if !c.scopes.Allows("list:users", scopes.Target{User: u.Name, Groups: u.Groups}) {
			continue // filtered scopes see only their own users
		}
		m, err := h.userModel(r.Context(), u, c.scopes, boolQuery(q, "include_stopped_servers"))
		if err != nil {
			writeErr(w, err)
			return
		}
		items = append(items, m)
	}
	if !paginated {
		if total > offset+len(users) {
			h.log.Info("truncated user list: ask with Accept: application/jupyterhub-pagination+json to page through all", "total", total, "limit", limit)
		}
		writeJSON(w, http.StatusOK, items)
		return
	}
	writeJSON(w, http.StatusOK, paginatedList(r, items, offset, limit, total))
}

func (h *Hub) apiGetUser(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "read:users:name")
	if !ok {
		return
	}
	m, err := h.userModel(r.Context(), u, c.scopes, boolQuery(r.URL.Query(), "include_stopped_servers"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (h *Hub) apiCreateUsers(w http.ResponseWriter, r *http.Request, c *caller) {
	if !c.scopes["admin:users"] {
		apiError(w, http.StatusForbidden, "requires scope admin:users")
		return
	}
	var body struct {
		Usernames []string `json:"usernames"`
		Admin     bool     `json:"admin"`
	}
	if err := h.decodeJSON(w, r, &body); err != nil {
		writeErr(w, err)
		return
	}
	if len(body.Usernames) == 0 {
		apiError(w, http.StatusBadRequest, "body must list the users to create: {\"usernames\": [...]}")
		return
	}
	for _, name := range body.Usernames {
		if err := validName(name); err != nil {
			writeErr(w, err)
			return
		}
	}
	created := []map[string]any{}
	for _, name := range body.Usernames {
		u, err := h.store.CreateUser(r.Context(), name, body.Admin)
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		h.log.Info("user created", "user", name, "admin", body.Admin, "by", c.user.Name)
		m, _ := h.userModel(r.Context(), u, c.scopes, false)
		created = append(created, m)
	}
	if len(created) == 0 {
		apiError(w, http.StatusConflict, "all of these users already exist")
		return
	}
	writeJSON(w, http.StatusCreated, created)
}

func (h *Hub) apiCreateUser(w http.ResponseWriter, r *http.Request, c *caller) {
	name := r.PathValue("name")
	if !c.scopes["admin:users"] {
		apiError(w, http.StatusForbidden, "requires scope admin:users")
		return
	}
	if err := validName(name); err != nil {
		writeErr(w, err)
		return
	}
	var body struct {
		Admin bool `json:"admin"`
	}
	if err := h.decodeJSON(w, r, &body); err != nil {
		writeErr(w, err)
		return
	}
	u, err := h.store.CreateUser(r.Context(), name, body.Admin)
	if err != nil {
		writeErr(w, err)
		return
	}
	h.log.Info("user created", "user", name, "admin", body.Admin, "by", c.user.Name)
	m, _ := h.userModel(r.Context(), u, c.scopes, false)
	writeJSON(w, http.StatusCreated, m)
}

func (h *Hub) apiPatchUser(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "admin:users")
	if !ok {
		return
	}
	var body struct {
		Name  *string `json:"name"`
		Admin *bool   `json:"admin"`
	}
	if err := h.decodeJSON(w, r, &body); err != nil {
		writeErr(w, err)
		return
	}
	if body.Name != nil {
		if err := validName(*body.Name); err != nil {
			writeErr(w, err)
			return
		}
		if *body.Name != u.Name {
			// A running server's unit, cookies and OAuth client carry the old name.
			if active, _ := h.store.Servers(r.Context(), u.ID, true); len(active) > 0 {
				apiError(w, http.StatusBadRequest, "stop %s's servers before renaming", u.Name)
				return
			}
		}
	}
	u, err := h.store.UpdateUser(r.Context(), u.Name, store.UserPatch{Name: body.Name, Admin: body.Admin})
	if err != nil {
		writeErr(w, err)
		return
	}
	m, _ := h.userModel(r.Context(), u, c.scopes, false)
	writeJSON(w, http.StatusOK, m)
}

func (h *Hub) apiDeleteUser(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "delete:users")
	if !ok {
		return
	}
	if u.ID == c.user.ID {
		apiError(w, http.StatusBadRequest, "cannot delete yourself")
		return
	}
	servers, err := h.store.Servers(r.Context(), u.ID, true)
	if err != nil {
		writeErr(w, err)
		return
	}
	for _, sv := range servers {
		if sv.State == store.Stopping {
			apiError(w, http.StatusBadRequest, "%s's server is still stopping; try again shortly", u.Name)
			return
		}
		done, err := h.stopServer(sv)
		if err != nil {
			writeErr(w, err)
			return
		}
		select {
		case <-done:
		case <-time.After(h.cfg.Spawner.StopTimeout.D()):
			apiError(w, http.StatusBadRequest, "%s's server did not stop in time; try again shortly", u.Name)
			return
		}
	}
	if err := h.store.DeleteUser(r.Context(), u.Name); err != nil {
		writeErr(w, err)
		return
	}
	h.log.Info("user deleted", "user", u.Name, "by", c.user.Name)
	w.WriteHeader(http.StatusNoContent)
}

// apiActivity is how single-user servers report that someone used them.
func (h *Hub) apiActivity(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "users:activity")
	if !ok {
		return
	}
	var body struct {
		LastActivity *time.Time `json:"last_activity"`
		Servers      map[string]struct {
			LastActivity *time.Time `json:"last_activity"`
		} `json:"servers"`
	}
	if err := h.decodeJSON(w, r, &body); err != nil {
		writeErr(w, err)
		return
	}
	if body.LastActivity == nil && body.Servers == nil {
		apiError(w, http.StatusBadRequest, "body needs last_activity and/or servers")
		return
	}
	check := func(t *time.Time) bool {
		if t != nil && time.Until(*t) > 59*time.Minute {
			apiError(w, http.StatusBadRequest, "last_activity %s is in the future", t.Format(time.RFC3339))
			return false
		}
		return true
	}
	if !check(body.LastActivity) {
		return
	}
	servers, err := h.store.Servers(r.Context(), u.ID, false)
	if err != nil {
		writeErr(w, err)
		return
	}
	byName := map[string]store.Server{}
	for _, sv := range servers {
		byName[sv.Name] = sv
	}
	for name, s := range body.Servers {
		if _, ok := byName[name]; !ok {
			apiError(w, http.StatusBadRequest, "no such server %q for user %s", name, u.Name)
			return
		}
		if !check(s.LastActivity) {
			return
		}
	}
	for name, s := range body.Servers {
		if s.LastActivity != nil {
			if err := h.store.TouchServer(r.Context(), byName[name].ID, *s.LastActivity); err != nil {
				writeErr(w, err)
				return
			}
		}
	}
	if body.LastActivity != nil {
		if err := h.store.TouchUser(r.Context(), u.ID, *body.LastActivity); err != nil {
			writeErr(w, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}
