package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// userJSON is JupyterHub's user model on the wire. Which fields a caller sees depends on its
// scopes, so every field but kind and name is a pointer, nil (and left out) where the caller
// may not read it; a pointer to nil is a field JupyterHub sends as null. A struct rather than a
// map because encoding a page of maps (reflecting every value, sorting every key) was ~40% of a
// users list's CPU.
type userJSON struct {
	Kind         string                 `json:"kind"`
	Name         string                 `json:"name"`
	Admin        *bool                  `json:"admin,omitempty"`
	Roles        *[]string              `json:"roles,omitempty"`
	Groups       *[]string              `json:"groups,omitempty"`
	Created      *any                   `json:"created,omitempty"`
	LastActivity *any                   `json:"last_activity,omitempty"`
	Server       *any                   `json:"server,omitempty"`
	Pending      *any                   `json:"pending,omitempty"`
	AuthState    *any                   `json:"auth_state,omitempty"`
	Servers      *map[string]serverJSON `json:"servers,omitempty"`
	// Only GET /user, the caller's own model, says what its credential holds.
	Scopes    *[]string `json:"scopes,omitempty"`
	TokenID   *any      `json:"token_id,omitempty"`
	SessionID *any      `json:"session_id,omitempty"`
}

// serverJSON is JupyterHub's server model on the wire; State only for admin:server_state.
type serverJSON struct {
	Name            string          `json:"name"`
	FullName        string          `json:"full_name"`
	LastActivity    any             `json:"last_activity"`
	Started         any             `json:"started"`
	Pending         any             `json:"pending"`
	Ready           bool            `json:"ready"`
	Stopped         bool            `json:"stopped"`
	URL             string          `json:"url"`
	UserOptions     json.RawMessage `json:"user_options"`
	ProgressURL     string          `json:"progress_url"`
	FullURL         *string         `json:"full_url"`
	FullProgressURL *string         `json:"full_progress_url"`
	State           *serverState    `json:"state,omitempty"`
}

// serverState is the spawner's state, as JupyterHub shows a spawner's get_state(): where the
// server runs, the GPUs it holds and, while it runs, what its unit's cgroup uses now.
type serverState struct {
	Unit  string           `json:"unit"`
	Port  int              `json:"port"`
	GPUs  []map[string]any `json:"gpus"`
	Usage *usageJSON       `json:"usage"`
}

// usageJSON is a server's usage: memory in bytes, CPU time in seconds, and the share of one
// CPU it used since cpu_percent_since (an earlier reading, or its start).
type usageJSON struct {
	MemoryBytes     uint64  `json:"memory_bytes"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPercent      float64 `json:"cpu_percent"`
	CPUPercentSince any     `json:"cpu_percent_since"`
	At              any     `json:"at"`
}

// ref is a pointer to a copy of v: a field of userJSON that is present, with v as its value.
func ref[T any](v T) *T { return &v }

// userModel builds JupyterHub's user model, with only the fields the caller's scopes may read.
func (a *API) userModel(ctx context.Context, u store.User, set scopes.Set, includeStopped bool) (*userJSON, error) {
	ms, err := a.userModels(ctx, []store.User{u}, set, includeStopped)
	if err != nil {
		return nil, err
	}
	return &ms[0], nil
}

// userModels builds the user models of a page of users, reading what they need beyond the
// users themselves (servers, auth state) for the whole page at once: a page costs the same
// few statements whatever its size.
func (a *API) userModels(ctx context.Context, users []store.User, set scopes.Set, includeStopped bool) ([]userJSON, error) {
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
	out := make([]userJSON, len(users))
	for i, u := range users {
		a.buildUserModel(ctx, &out[i], u, set, servers[u.ID], states[u.ID])
	}
	return out, nil
}

// buildUserModel fills in one user's model from what userModels read.
func (a *API) buildUserModel(ctx context.Context, m *userJSON, u store.User, set scopes.Set, servers []store.Server, authState any) {
	t := scopes.Target{User: u.Name, Groups: u.Groups}
	m.Kind, m.Name = "user", u.Name
	var def *store.Server
	for i := range servers {
		if servers[i].Name == "" {
			def = &servers[i]
		}
	}
	if set.Allows("read:users:name", t) {
		m.Admin = ref(u.Admin)
	}
	if set.Allows("read:users:groups", t) {
		m.Groups = ref(u.Groups)
	}
	if set.Allows("read:users:activity", t) {
		m.LastActivity = ref(web.ISOTime(u.LastActivity))
	}
	readRoles, readUsers := set.Allows("read:roles:users", t), set.Allows("read:users", t)
	if readRoles || readUsers {
		m.Roles, m.Admin = ref(a.gate.UserRoles(u)), ref(u.Admin)
	}
	if readUsers {
		m.Created = ref(web.ISOTime(u.Created))
		var server, pending any
		if def != nil && def.State != store.Stopped {
			pending = pendingOf(def.State)
			if def.State == store.Running {
				server = a.servers.URL(u.Name, "")
			}
		}
		m.Server, m.Pending, m.AuthState = &server, &pending, ref[any](nil)
	}
	if set.Allows("admin:auth_state", t) {
		m.AuthState = &authState
	}
	if readsServers(set, u.Name, t) {
		sm := make(map[string]serverJSON, len(servers))
		for _, sv := range servers {
			st := scopes.Target{User: u.Name, Groups: u.Groups, Server: sv.Name, HasServer: true}
			if set.Allows("read:servers", st) {
				sm[sv.Name] = a.serverModel(ctx, sv, set.Allows("admin:server_state", st))
			}
		}
		m.Servers = &sm
	}
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

func (a *API) serverModel(ctx context.Context, sv store.Server, withState bool) serverJSON {
	progress := a.prefix + "/hub/api/users/" + sv.UserName + "/server/progress"
	if sv.Name != "" {
		progress = a.prefix + "/hub/api/users/" + sv.UserName + "/servers/" + sv.Name + "/progress"
	}
	m := serverJSON{
		Name:         sv.Name,
		FullName:     sv.UserName + "/" + sv.Name,
		LastActivity: web.ISOTime(sv.LastActivity),
		Started:      web.ISOTime(sv.Started),
		Pending:      pendingOf(sv.State),
		Ready:        sv.State == store.Running,
		Stopped:      sv.State == store.Stopped,
		URL:          a.servers.URL(sv.UserName, sv.Name),
		UserOptions:  sv.UserOptions,
		ProgressURL:  progress,
	}
	if len(m.UserOptions) == 0 {
		m.UserOptions = json.RawMessage("{}")
	}
	if hosts := a.servers.Hosts(); hosts.On() {
		m.FullURL, m.FullProgressURL = ref(a.servers.FullURL(sv.UserName, sv.Name)), ref(hosts.HubOrigin()+progress)
	} else if a.cfg.Hub.PublicURL != "" {
		// As JupyterHub: the full URLs are known only once the hub knows its public URL.
		base := strings.TrimSuffix(a.cfg.Hub.PublicURL, "/")
		if u, err := url.Parse(base); err == nil {
			base = u.Scheme + "://" + u.Host
		}
		m.FullURL, m.FullProgressURL = ref(base+m.URL), ref(base+progress)
	}
	if withState {
		m.State = &serverState{Unit: sv.Unit, Port: sv.Port, GPUs: a.heldGPUs(sv.ID)}
		if u, ok := a.servers.ServerUsage(ctx, sv); ok {
			m.State.Usage = &usageJSON{
				MemoryBytes: u.MemoryBytes, CPUSeconds: u.CPU.Seconds(), CPUPercent: u.CPUPercent,
				CPUPercentSince: web.ISOTime(u.CPUSince), At: web.ISOTime(u.At),
			}
		}
	}
	return m
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
	created := []*userJSON{}
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
