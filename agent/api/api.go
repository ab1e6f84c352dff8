// Package api is the JupyterHub REST API under /hub/api: users, groups, servers and their
// progress, tokens, activity, sharing, services, the router table, and who holds which GPU
// (/hub/api/gpus); and the Prometheus metrics at /hub/metrics. Handlers resolve the caller through the auth layer and
// start and stop servers through the lifecycle core; they hold no state of their own.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/profiles"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// API serves the REST API.
type API struct {
	cfg            config.Config
	prefix         string
	store          *store.Store
	servers        *servers.Manager
	gate           *auth.Gate
	log            *slog.Logger
	gpus           GPUs
	metricsHandler http.Handler
	passwords      auth.Authenticator // for POST .../tokens with {"auth": ...}; nil without password logins
	shutdownHub    func(stopServers bool)
	profiles       *profiles.Set // [[profile]]: what a start's user_options.profile may name
}

// Deps is what the API works with. GPUs and Metrics are optional: without GPUs the hub lists
// none, without Metrics there is no /hub/metrics.
type Deps struct {
	Store   *store.Store
	Servers *servers.Manager
	Gate    *auth.Gate
	Logger  *slog.Logger
	GPUs    GPUs
	// Metrics serves the Prometheus exposition; the API puts it at /hub/metrics, behind the
	// read:metrics scope unless hub.metrics_public is on.
	Metrics http.Handler
	// Passwords checks {"auth": {"username", "password"}} in a token request (PAM); nil refuses it.
	Passwords auth.Authenticator
	// Shutdown ends the hub, stopping every server first if asked (POST /shutdown).
	Shutdown func(stopServers bool)
}

// New makes the API.
func New(cfg config.Config, d Deps) *API {
	return &API{
		cfg: cfg, prefix: strings.TrimSuffix(cfg.Hub.BaseURL, "/"), store: d.Store, servers: d.Servers, gate: d.Gate,
		log: d.Logger, gpus: d.GPUs, metricsHandler: d.Metrics, passwords: d.Passwords, shutdownHub: d.Shutdown,
		profiles: profiles.New(cfg.Profiles),
	}
}

// apiHandler is an API endpoint that runs once the caller is known.
type apiHandler func(w http.ResponseWriter, r *http.Request, c *auth.Caller)

// methods dispatches on the HTTP method with a JSON 405 for the rest; ServeMux's own is plain text.
type methods map[string]apiHandler

// Register mounts the API under <base>/hub/api; the OAuth provider mounts its own endpoints there.
func (a *API) Register(mux *http.ServeMux) {
	api := a.prefix + "/hub/api"
	public := func(fn http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// The single-user server and the idle culler probe these from other origins.
			w.Header().Set("Access-Control-Allow-Origin", "*")
			fn(w, r)
		}
	}
	mux.HandleFunc(api, public(a.root))
	mux.HandleFunc(api+"/{$}", public(a.root))
	mux.HandleFunc(api+"/health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc(api+"/", func(w http.ResponseWriter, r *http.Request) {
		web.Error(w, http.StatusNotFound, "no API endpoint at %s", r.URL.Path)
	})
	mux.Handle(api+"/info", a.authed(methods{"GET": a.info}))
	mux.Handle(api+"/user", a.authed(methods{"GET": a.self}))
	mux.Handle(api+"/users", a.authed(methods{"GET": a.listUsers, "POST": a.createUsers}))
	mux.Handle(api+"/users/{name}", a.authed(methods{
		"GET": a.getUser, "POST": a.createUser, "PATCH": a.patchUser, "DELETE": a.deleteUser,
	}))
	mux.Handle(api+"/users/{name}/activity", a.authed(methods{"POST": a.activity}))
	mux.Handle(api+"/users/{name}/server", a.authed(methods{"POST": a.startServer, "DELETE": a.stopServer}))
	mux.Handle(api+"/users/{name}/server/progress", a.authed(methods{"GET": a.progress}))
	mux.Handle(api+"/users/{name}/tokens", a.authedWith(methods{"GET": a.listTokens, "POST": a.createToken}, true))
	mux.Handle(api+"/users/{name}/tokens/{id}", a.authed(methods{"GET": a.getToken, "DELETE": a.deleteToken}))
	// An empty server name is the default server: JupyterHub's own admin page calls these.
	mux.Handle(api+"/users/{name}/servers/{$}", a.authed(methods{"POST": a.startServer, "DELETE": a.stopServer}))
	mux.Handle(api+"/users/{name}/servers/{server}", a.authed(methods{"POST": a.startServer, "DELETE": a.stopServer}))
	mux.Handle(api+"/users/{name}/servers/{server}/progress", a.authed(methods{"GET": a.progress}))
	mux.Handle(api+"/proxy", a.authed(methods{"GET": a.proxy, "POST": a.syncProxy, "PATCH": a.syncProxy}))
	mux.Handle(api+"/shutdown", a.authed(methods{"POST": a.shutdown}))
	mux.Handle(api+"/authorizations/token/{token}", a.authed(methods{"GET": a.tokenOwner}))
	a.registerGroups(mux, api)
	a.registerShares(mux, api)
	mux.Handle(api+"/services", a.authed(methods{"GET": a.listServices}))
	mux.Handle(api+"/services/{service}", a.authed(methods{"GET": a.getService}))
	mux.Handle(api+"/gpus", a.authed(methods{"GET": a.listGPUs}))
	if a.metricsHandler != nil {
		metrics := a.prefix + "/hub/metrics"
		if !a.cfg.Hub.PublicMetrics() {
			mux.Handle(metrics, a.authed(methods{"GET": a.metrics}))
		} else {
			mux.Handle(metrics, a.metricsHandler)
		}
	}
}

// authed resolves the caller from a token (Authorization header) or the login cookie, and
// answers 403 when there is neither: JupyterHub clients treat 403, not 401, as "not logged in".
func (a *API) authed(m methods) http.Handler { return a.authedWith(m, false) }

// authedWith is authed; with passwords, a request without credentials may also authenticate with
// {"auth": {"username": ..., "password": ...}} in its body, as JupyterHub allows for tokens.
func (a *API) authedWith(m methods, passwords bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			// A CORS preflight: say what may be sent. Cross-origin use still needs a token,
			// and no Access-Control-Allow-Origin is given for these endpoints.
			allowed := make([]string, 0, len(m))
			for k := range m {
				allowed = append(allowed, k)
			}
			w.Header().Set("Access-Control-Allow-Headers", "accept, content-type, authorization, x-xsrftoken")
			w.Header().Set("Access-Control-Allow-Methods", strings.Join(allowed, ", "))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fn, ok := m[r.Method]
		if !ok {
			allowed := make([]string, 0, len(m))
			for k := range m {
				allowed = append(allowed, k)
			}
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			web.Error(w, http.StatusMethodNotAllowed, "method %s not allowed here", r.Method)
			return
		}
		c, err := a.gate.FromRequest(r)
		if passwords && r.Method == http.MethodPost && errors.Is(err, store.ErrNotFound) && !errors.Is(err, auth.ErrXSRF) {
			c, err = a.passwordCaller(w, r)
		}
		if errors.Is(err, auth.ErrXSRF) {
			web.Error(w, http.StatusForbidden, "XSRF check failed: send the _xsrf token (X-XSRFToken header) with cookie-authenticated requests, or use an API token")
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			web.Error(w, http.StatusForbidden, "missing or invalid credentials: send \"Authorization: token <token>\"")
			return
		}
		if err != nil {
			a.writeErr(w, err)
			return
		}
		fn(w, r, c)
	})
}

func (a *API) root(w http.ResponseWriter, r *http.Request) {
	web.JSON(w, http.StatusOK, map[string]string{"version": web.Version})
}

func (a *API) info(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes.HasAny("read:hub") {
		web.Error(w, http.StatusForbidden, "requires scope read:hub")
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{
		"version":        web.Version,
		"python":         "",
		"sys_executable": "",
		"go":             runtime.Version(),
		"authenticator":  map[string]string{"class": "jupyterhub-go." + a.cfg.Auth.Method, "version": web.Version},
		"spawner":        map[string]string{"class": "jupyterhub-go.systemd", "version": web.Version},
	})
}

// proxy shows the built-in router's table in configurable-http-proxy's shape, for tools that
// inspect /hub/api/proxy.
func (a *API) proxy(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes["proxy"] {
		web.Error(w, http.StatusForbidden, "requires scope proxy")
		return
	}
	table := map[string]any{}
	for _, e := range a.servers.Routes() {
		spec := a.servers.URL(e.User, e.Server)
		table[spec] = map[string]any{
			"routespec": spec,
			"target":    "http://127.0.0.1:" + strconv.Itoa(e.Port),
			"data":      map[string]any{"user": e.User, "server_name": e.Server},
		}
	}
	web.JSON(w, http.StatusOK, table)
}

// self is GET /hub/api/user: how single-user servers learn who a token belongs to.
func (a *API) self(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if c.Service != nil {
		// A service's token: JupyterHub answers with the service's model.
		m := a.serviceModel(c.Service, scopes.Set{"read:services:name!service=" + c.Service.Name: true, "read:roles:services!service=" + c.Service.Name: true})
		m["scopes"] = c.Scopes.List()
		web.JSON(w, http.StatusOK, m)
		return
	}
	// Any valid token may identify its owner (JupyterHub's implicit identify scopes).
	view := scopes.Set{}
	for s := range c.Scopes {
		view[s] = true
	}
	view["read:users:name!user="+c.User.Name] = true
	view["read:users:groups!user="+c.User.Name] = true
	model, err := a.userModel(r.Context(), c.User, view, false)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	var tokenID, sessionID any
	if c.Token != nil {
		tokenID = c.Token.APIID()
		if c.Token.SessionID != "" {
			sessionID = c.Token.SessionID
		}
	} else if c.Session != nil {
		sessionID = c.Session.ID
	}
	model.Scopes, model.TokenID, model.SessionID = ref(c.Scopes.List()), &tokenID, &sessionID
	web.JSON(w, http.StatusOK, model)
}

// targetUser loads the user named in the path and checks the caller holds scope on them. As in
// JupyterHub, a caller who holds the scope for other users only (a user's own token, a group
// filter) gets 404 for a user out of reach, the same answer as for one that does not exist, so
// names cannot be probed; a caller without the scope at all gets 403.
func (a *API) targetUser(w http.ResponseWriter, r *http.Request, c *auth.Caller, scope string) (store.User, bool) {
	return a.targetUserFor(w, r, c, scope, "")
}

// targetUserFor is targetUser where the request acts on the user's server of that name.
func (a *API) targetUserFor(w http.ResponseWriter, r *http.Request, c *auth.Caller, scope, server string) (store.User, bool) {
	name := r.PathValue("name")
	if err := web.ValidName(name); err != nil {
		a.writeErr(w, err)
		return store.User{}, false
	}
	if !c.Scopes.HasAny(scope) {
		web.Error(w, http.StatusForbidden, "requires scope %s", scope)
		return store.User{}, false
	}
	u, err := a.store.GetUser(r.Context(), name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.writeErr(w, err)
		return u, false
	}
	if err != nil || !c.Scopes.Allows(scope, scopes.Target{User: u.Name, Groups: u.Groups, Server: server, HasServer: true}) {
		if c.Scopes[scope] {
			web.Error(w, http.StatusNotFound, "no such user %s", name)
		} else {
			web.Error(w, http.StatusNotFound, "no user %s within reach of this token's %s scope, or no such user", name, scope)
		}
		return u, false
	}
	return u, true
}

// paging reads offset and limit. As in JupyterHub, a client that does not ask for the pagination
// media type gets the largest page by default, so that code written before paging existed sees
// as many items as it may; hub.api_page_max_limit caps every page.
func (a *API) paging(r *http.Request) (offset, limit int, paginated bool, err error) {
	paginated = strings.Contains(r.Header.Get("Accept"), "application/jupyterhub-pagination+json")
	defaultLimit, maxLimit := a.cfg.Hub.APIPageDefaultLimit, a.cfg.Hub.APIPageMaxLimit
	limit = maxLimit
	if paginated {
		limit = defaultLimit
	}
	q := r.URL.Query()
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, false, web.Errorf(http.StatusBadRequest, "offset must be a non-negative integer")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			return 0, 0, false, web.Errorf(http.StatusBadRequest, "limit must be an integer")
		}
		limit = max(1, min(limit, maxLimit))
	}
	return offset, limit, paginated, nil
}

// paginatedList wraps a page of items as JupyterHub's PaginatedList; next.url is absolute, as
// JupyterHub's is (the stock idle culler fetches it as it is).
func (a *API) paginatedList(r *http.Request, items any, offset, limit, total int) map[string]any {
	var next any
	if offset+limit < total {
		u := *r.URL
		q := u.Query()
		q.Set("offset", strconv.Itoa(offset+limit))
		q.Set("limit", strconv.Itoa(limit))
		u.RawQuery = q.Encode()
		next = map[string]any{"offset": offset + limit, "limit": limit, "url": a.fullURL(r, u.RequestURI())}
	}
	return map[string]any{
		"items":       items,
		"_pagination": map[string]any{"offset": offset, "limit": limit, "total": total, "next": next},
	}
}

func boolQuery(q url.Values, key string) bool {
	v, ok := q[key]
	if !ok {
		return false
	}
	return len(v) == 0 || v[0] == "" || v[0] == "1" || strings.EqualFold(v[0], "true")
}

// decodeJSON reads a JSON body of at most hub.max_body_bytes.
func (a *API) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return web.DecodeJSON(w, r, a.cfg.Hub.MaxBodyBytes, v, !auth.HasToken(r), false)
}

// decodeModel is decodeJSON for bodies that are a model JupyterHub checks key by key.
func (a *API) decodeModel(w http.ResponseWriter, r *http.Request, v any) error {
	return web.DecodeJSON(w, r, a.cfg.Hub.MaxBodyBytes, v, !auth.HasToken(r), true)
}

// fullURL makes a path absolute: from hub.public_url when set, else from how the request came in
// (scheme as the trusted proxy says, Host as sent).
func (a *API) fullURL(r *http.Request, path string) string {
	if pu := strings.TrimSuffix(a.cfg.Hub.PublicURL, "/"); pu != "" {
		if u, err := url.Parse(pu); err == nil {
			return u.Scheme + "://" + u.Host + path
		}
	}
	scheme := "http"
	if a.gate.Secure(r) {
		scheme = "https"
	}
	host := r.Host
	if a.gate.FromTrustedProxy(r) {
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = strings.TrimSpace(strings.Split(fh, ",")[0])
		}
	}
	return scheme + "://" + host + path
}

// writeErr is web.WriteErr, with a start or stop that does not fit the server's state as 400.
func (a *API) writeErr(w http.ResponseWriter, err error) {
	if errors.Is(err, servers.ErrConflict) {
		web.Error(w, http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), servers.ErrConflict.Error()+": "))
		return
	}
	web.WriteErr(w, err)
}

// syncProxy is POST/PATCH /proxy: with an external proxy, JupyterHub re-sends its routes or
// points itself at a new proxy. The router is built in and always in sync, so there is nothing
// to do but say so.
func (a *API) syncProxy(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes["proxy"] {
		web.Error(w, http.StatusForbidden, "requires scope proxy")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// shutdown is POST /shutdown: the hub exits; with {"servers": true} it stops every server first.
// Without that, servers keep running and the next hub re-adopts them (JupyterHub's default is to
// stop them, because its servers die with its proxy; here they do not).
func (a *API) shutdown(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes["shutdown"] {
		web.Error(w, http.StatusForbidden, "requires scope shutdown")
		return
	}
	var body struct {
		Servers bool `json:"servers"`
		Proxy   bool `json:"proxy"` // the router is the hub: it always goes with it
	}
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	if a.shutdownHub == nil {
		web.Error(w, http.StatusServiceUnavailable, "this hub cannot shut itself down")
		return
	}
	a.log.Warn("shutdown requested through the API", "by", c.Name(), "stop_servers", body.Servers)
	w.WriteHeader(http.StatusAccepted)
	go a.shutdownHub(body.Servers)
}

// tokenOwner is the deprecated GET /authorizations/token/{token}: the model of the token's owner,
// for old services that identify users this way (JupyterHub 5 still answers it; GET /user with
// the token is the way now).
func (a *API) tokenOwner(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	owner, err := a.gate.FromToken(r.Context(), r.PathValue("token"))
	if err != nil || owner.Service != nil { // a service's token has no user to show
		web.Error(w, http.StatusNotFound, "no such token")
		return
	}
	if owner.User.ID != c.User.ID && !c.Scopes.Allows("read:users:name", scopes.Target{User: owner.User.Name, Groups: owner.User.Groups}) {
		web.Error(w, http.StatusNotFound, "no such token")
		return
	}
	m, err := a.userModel(r.Context(), owner.User, c.Scopes, false)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	web.JSON(w, http.StatusOK, m)
}

// passwordCaller authenticates a request by the username and password in its JSON body, under
// the same throttle as the login form. The body is put back for the handler.
func (a *API) passwordCaller(w http.ResponseWriter, r *http.Request) (*auth.Caller, error) {
	if a.passwords == nil {
		return nil, store.ErrNotFound
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.Hub.MaxBodyBytes))
	if err != nil {
		return nil, web.Errorf(http.StatusRequestEntityTooLarge, "request body over %d bytes (hub.max_body_bytes)", a.cfg.Hub.MaxBodyBytes)
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	var body struct {
		Auth struct {
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auth"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Auth.Username == "" || body.Auth.Password == "" {
		return nil, store.ErrNotFound
	}
	name := strings.ToLower(strings.TrimSpace(body.Auth.Username))
	if web.ValidName(name) != nil {
		return nil, store.ErrNotFound
	}
	if blocked, wait := a.gate.LoginThrottled(r, name); blocked {
		return nil, web.Errorf(http.StatusTooManyRequests, "too many failed logins for this account or from this address; try again in %s", wait.Round(time.Second)+time.Second)
	}
	id, err := a.passwords.Authenticate(r.Context(), name, body.Auth.Password)
	if errors.Is(err, auth.ErrBadLogin) {
		a.gate.LoginFailed(r, name)
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("check password: %w", err)
	}
	admin, allowed := a.gate.Admission(id)
	if !allowed {
		return nil, web.Errorf(http.StatusForbidden, "%s may not use this hub", id.Name)
	}
	a.gate.LoginSucceeded(name)
	u, err := a.gate.RecordLogin(r.Context(), id, admin, false)
	if err != nil {
		return nil, err
	}
	owner, err := a.gate.OwnerScopes(r.Context(), u)
	if err != nil {
		return nil, err
	}
	return &auth.Caller{User: u, Scopes: owner}, nil
}
