package agent

import (
	"errors"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// apiHandler is an API endpoint that runs once the caller is known.
type apiHandler func(w http.ResponseWriter, r *http.Request, c *caller)

// methods dispatches on the HTTP method with a JSON 405 for the rest; ServeMux's own is plain text.
type methods map[string]apiHandler

func (h *Hub) apiRoutes(mux *http.ServeMux) {
	api := h.prefix + "/hub/api"
	public := func(fn http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// The single-user server and the idle culler probe these from other origins.
			w.Header().Set("Access-Control-Allow-Origin", "*")
			fn(w, r)
		}
	}
	mux.HandleFunc(api, public(h.apiRoot))
	mux.HandleFunc(api+"/{$}", public(h.apiRoot))
	mux.HandleFunc(api+"/health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc(api+"/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no API endpoint at %s", r.URL.Path)
	})
	mux.Handle(api+"/info", h.authed(methods{"GET": h.apiInfo}))
	mux.Handle(api+"/user", h.authed(methods{"GET": h.apiSelf}))
	mux.Handle(api+"/users", h.authed(methods{"GET": h.apiListUsers, "POST": h.apiCreateUsers}))
	mux.Handle(api+"/users/{name}", h.authed(methods{
		"GET": h.apiGetUser, "POST": h.apiCreateUser, "PATCH": h.apiPatchUser, "DELETE": h.apiDeleteUser,
	}))
	mux.Handle(api+"/users/{name}/activity", h.authed(methods{"POST": h.apiActivity}))
	mux.Handle(api+"/users/{name}/server", h.authed(methods{"POST": h.apiStartServer, "DELETE": h.apiStopServer}))
	mux.Handle(api+"/users/{name}/server/progress", h.authed(methods{"GET": h.apiProgress}))
	mux.Handle(api+"/users/{name}/tokens", h.authed(methods{"GET": h.apiListTokens, "POST": h.apiCreateToken}))
	mux.Handle(api+"/users/{name}/tokens/{id}", h.authed(methods{"GET": h.apiGetToken, "DELETE": h.apiDeleteToken}))
	named := func(w http.ResponseWriter, r *http.Request, c *caller) {
		apiError(w, http.StatusBadRequest, "named servers are not enabled on this hub; use /users/{name}/server")
	}
	mux.Handle(api+"/users/{name}/servers/{server}", h.authed(methods{"POST": named, "DELETE": named}))
	mux.Handle(api+"/users/{name}/servers/{server}/progress", h.authed(methods{"GET": named}))
	mux.Handle(api+"/proxy", h.authed(methods{"GET": h.apiProxy}))
	mux.HandleFunc(api+"/oauth2/authorize", h.oauthAuthorize)
	mux.HandleFunc(api+"/oauth2/token", h.oauthToken)
}

// authed resolves the caller from a token (Authorization header) or the login cookie, and
// answers 403 when there is neither: JupyterHub clients treat 403, not 401, as "not logged in".
func (h *Hub) authed(m methods) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fn, ok := m[r.Method]
		if !ok {
			allowed := make([]string, 0, len(m))
			for k := range m {
				allowed = append(allowed, k)
			}
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			apiError(w, http.StatusMethodNotAllowed, "method %s not allowed here", r.Method)
			return
		}
		var c *caller
		var err error
		if tok := tokenFromHeader(r); tok != "" {
			c, err = h.tokenCaller(r.Context(), tok)
		} else {
			c, err = h.cookieCaller(r)
			if err == nil && r.Method != http.MethodGet && r.Method != http.MethodHead && !h.checkXSRF(r, c) {
				apiError(w, http.StatusForbidden, "XSRF check failed: send the _xsrf token with cookie-authenticated requests")
				return
			}
		}
		if errors.Is(err, store.ErrNotFound) {
			apiError(w, http.StatusForbidden, "missing or invalid credentials: send \"Authorization: token <token>\"")
			return
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		fn(w, r, c)
	})
}

func (h *Hub) apiRoot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": Version})
}

func (h *Hub) apiInfo(w http.ResponseWriter, r *http.Request, c *caller) {
	if !c.scopes.HasAny("read:hub") {
		apiError(w, http.StatusForbidden, "requires scope read:hub")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"version":        Version,
		"python":         "",
		"sys_executable": "",
		"go":             runtime.Version(),
		"authenticator":  map[string]string{"class": "jupyterhub-go." + h.cfg.Auth.Method, "version": Version},
		"spawner":        map[string]string{"class": "jupyterhub-go.systemd", "version": Version},
	})
}

// apiProxy shows the built-in router's table in configurable-http-proxy's shape, for tools that
// inspect /hub/api/proxy.
func (h *Hub) apiProxy(w http.ResponseWriter, r *http.Request, c *caller) {
	if !c.scopes["proxy"] {
		apiError(w, http.StatusForbidden, "requires scope proxy")
		return
	}
	table := map[string]any{}
	h.mu.Lock()
	for key, rt := range h.routes {
		user, server, _ := strings.Cut(key, "/")
		spec := h.serverURL(user, server)
		table[spec] = map[string]any{
			"routespec": spec,
			"target":    "http://127.0.0.1:" + strconv.Itoa(rt.port),
			"data":      map[string]any{"user": user, "server_name": server},
		}
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, table)
}

// apiSelf is GET /hub/api/user: how single-user servers learn who a token belongs to.
func (h *Hub) apiSelf(w http.ResponseWriter, r *http.Request, c *caller) {
	// Any valid token may identify its owner (JupyterHub's implicit identify scopes).
	view := scopes.Set{}
	for s := range c.scopes {
		view[s] = true
	}
	view["read:users:name!user="+c.user.Name] = true
	view["read:users:groups!user="+c.user.Name] = true
	model, err := h.userModel(r.Context(), c.user, view, false)
	if err != nil {
		writeErr(w, err)
		return
	}
	model["scopes"] = c.scopes.List()
	model["session_id"] = nil
	model["token_id"] = nil
	if c.token != nil {
		model["token_id"] = c.token.APIID()
		if c.token.SessionID != "" {
			model["session_id"] = c.token.SessionID
		}
	} else if c.session != nil {
		model["session_id"] = c.session.ID
	}
	writeJSON(w, http.StatusOK, model)
}

// targetUser loads the user named in the path and checks the caller holds scope on them.
// Without any hold on the user it answers 404, as JupyterHub does, so names are not probed.
func (h *Hub) targetUser(w http.ResponseWriter, r *http.Request, c *caller, scope string) (store.User, bool) {
	name := r.PathValue("name")
	if err := validName(name); err != nil {
		writeErr(w, err)
		return store.User{}, false
	}
	u, err := h.store.GetUser(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		if c.scopes.HasAny(scope) {
			apiError(w, http.StatusNotFound, "no such user %s", name)
		} else {
			apiError(w, http.StatusForbidden, "requires scope %s", scope)
		}
		return u, false
	}
	if err != nil {
		writeErr(w, err)
		return u, false
	}
	if !c.scopes.Allows(scope, scopes.Target{User: u.Name, Groups: u.Groups, HasServer: true}) {
		apiError(w, http.StatusForbidden, "requires scope %s on user %s", scope, u.Name)
		return u, false
	}
	return u, true
}

// paging reads offset and limit; with the pagination media type the default page is smaller.
func paging(r *http.Request) (offset, limit int, paginated bool, err error) {
	paginated = strings.Contains(r.Header.Get("Accept"), "application/jupyterhub-pagination+json")
	const defaultLimit, maxLimit = 50, 200
	limit = maxLimit
	if paginated {
		limit = defaultLimit
	}
	q := r.URL.Query()
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, false, &httpError{http.StatusBadRequest, "offset must be a non-negative integer"}
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			return 0, 0, false, &httpError{http.StatusBadRequest, "limit must be an integer"}
		}
		limit = max(1, min(limit, maxLimit))
	}
	return offset, limit, paginated, nil
}

// paginated wraps a page of items as JupyterHub's PaginatedList.
func paginatedList(r *http.Request, items any, offset, limit, total int) map[string]any {
	var next any
	if offset+limit < total {
		u := *r.URL
		q := u.Query()
		q.Set("offset", strconv.Itoa(offset+limit))
		q.Set("limit", strconv.Itoa(limit))
		u.RawQuery = q.Encode()
		next = map[string]any{"offset": offset + limit, "limit": limit, "url": u.RequestURI()}
	}
	return map[string]any{
		"items":       items,
		"_pagination": map[string]any{"offset": offset, "limit": limit, "total": total, "next": next},
	}
}

func isoTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

func boolQuery(q url.Values, key string) bool {
	v, ok := q[key]
	if !ok {
		return false
	}
	return len(v) == 0 || v[0] == "" || v[0] == "1" || strings.EqualFold(v[0], "true")
}
