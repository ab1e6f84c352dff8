package pages

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Named servers (hub.allow_named_servers) on the pages: the spawn, spawn-pending and stop pages
// take a server name (the path's {server}, or the home page's form field), and the home page
// lists a user's named servers with start, stop and delete, as JupyterHub's home page does, with
// plain forms.

// spawnServerName is the server a spawn request is for: the path's, or the name typed into the
// home page's "new server" field.
func spawnServerName(r *http.Request) string {
	if s := r.PathValue("server"); s != "" {
		return s
	}
	if r.Method == http.MethodPost {
		return strings.TrimSpace(r.PostFormValue("server_name"))
	}
	return ""
}

// server is u's server of that name. A named server without a record yet is a stopped one
// (ID 0): a page that only looks must not create it, because records count against the limit.
// On an error the page has been written.
func (h *Pages) server(w http.ResponseWriter, r *http.Request, u store.User, name string) (store.Server, error) {
	if name == "" {
		sv, err := h.store.Server(r.Context(), u.ID, "")
		if err != nil {
			h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
		}
		return sv, err
	}
	if !h.cfg.Hub.AllowNamedServers {
		h.render.Error(w, r, http.StatusBadRequest, "Named servers are not enabled", "This hub runs one server per user (hub.allow_named_servers is off).")
		return store.Server{}, errors.New("named servers are off")
	}
	if err := servers.ValidServerName(name); err != nil {
		h.render.Error(w, r, http.StatusBadRequest, "Invalid server name", err.Error())
		return store.Server{}, err
	}
	sv, err := h.store.FindServer(r.Context(), u.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Server{UserID: u.ID, UserName: u.Name, Name: name, State: store.Stopped}, nil
	}
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
	}
	return sv, err
}

func (h *Pages) pendingURL(user, server string) string {
	if server == "" {
		return h.prefix + "/hub/spawn-pending/" + user
	}
	return h.prefix + "/hub/spawn-pending/" + user + "/" + server
}

func (h *Pages) progressURL(user, server string) string {
	if server == "" {
		return h.prefix + "/hub/api/users/" + user + "/server/progress"
	}
	return h.prefix + "/hub/api/users/" + user + "/servers/" + server + "/progress"
}

// namedServerOf is the server a /user/<name>/<rest> path is for: the named server whose name is
// rest's first segment, if user has one, else the default server (""), as JupyterHub decides.
func (h *Pages) namedServerOf(r *http.Request, user, rest string) string {
	if !h.cfg.Hub.AllowNamedServers {
		return ""
	}
	seg, _, _ := strings.Cut(rest, "/")
	if seg == "" || servers.ValidServerName(seg) != nil {
		return ""
	}
	u, err := h.store.GetUser(r.Context(), user)
	if err != nil {
		return ""
	}
	if _, err := h.store.FindServer(r.Context(), u.ID, seg); err != nil {
		return ""
	}
	return seg
}

// namedRow is one named server on the home page.
type namedRow struct {
	Name, State, URL, Active, PendingURL string
}

// namedServersOnHome adds the user's named servers to the home page's data.
func (h *Pages) namedServersOnHome(ctx context.Context, u store.User, data map[string]any) error {
	if !h.cfg.Hub.AllowNamedServers {
		return nil
	}
	all, err := h.store.Servers(ctx, u.ID, false)
	if err != nil {
		return err
	}
	rows := []namedRow{}
	for _, sv := range all {
		if sv.Name == "" {
			continue
		}
		rows = append(rows, namedRow{
			Name: sv.Name, State: sv.State, URL: h.servers.FullURL(u.Name, sv.Name),
			Active: ago(sv.LastActivity), PendingURL: h.pendingURL(u.Name, sv.Name),
		})
	}
	limit := h.cfg.Hub.NamedServerLimitPerUser
	data["Named"] = map[string]any{"Servers": rows, "Limit": limit, "Full": limit > 0 && len(rows) >= limit}
	return nil
}
