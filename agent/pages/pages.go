package pages

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/profiles"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// Pages serves the hub's HTML pages.
type Pages struct {
	cfg     config.Config
	prefix  string
	store   *store.Store
	servers *servers.Manager
	gate    *auth.Gate
	auth    auth.Authenticator // password logins; nil when logins go through an identity provider
	render  *Renderer
	log     *slog.Logger
	// profiles are [[profile]]: the spawn page's options form (profiles.go).
	profiles *profiles.Set
	// heldGPUs names the GPUs a server holds, for the admin page; nil on a hub without GPUs.
	heldGPUs func(serverID int64) []string
}

// Deps are what the pages call.
type Deps struct {
	Store    *store.Store
	Servers  *servers.Manager
	Gate     *auth.Gate
	Auth     auth.Authenticator
	Renderer *Renderer
	Logger   *slog.Logger
	// HeldGPUs names the GPUs a server holds (the admin page shows them); nil: none.
	HeldGPUs func(serverID int64) []string
}

// New makes the pages.
func New(cfg config.Config, d Deps) *Pages {
	return &Pages{
		cfg: cfg, prefix: strings.TrimSuffix(cfg.Hub.BaseURL, "/"),
		store: d.Store, servers: d.Servers, gate: d.Gate, auth: d.Auth, render: d.Renderer, log: d.Logger,
		profiles: profiles.New(cfg.Profiles),
		heldGPUs: d.HeldGPUs,
	}
}

// Register mounts the pages under <base>/hub/ and the redirects at the base URL.
func (h *Pages) Register(mux *http.ServeMux) {
	hub := h.prefix + "/hub"
	toHome := func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, hub+"/home", http.StatusFound) }
	mux.HandleFunc(h.prefix+"/{$}", toHome)
	mux.HandleFunc(hub, toHome)
	mux.HandleFunc(hub+"/{$}", toHome)
	mux.HandleFunc(hub+"/health", func(w http.ResponseWriter, r *http.Request) {})
	static, _ := fs.Sub(assets, "static")
	mux.Handle(hub+"/static/", http.StripPrefix(hub+"/static/", http.FileServerFS(static)))
	mux.HandleFunc(hub+"/logo", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, assets, "static/logo.svg")
	})
	mux.HandleFunc(hub+"/login", h.loginPage)
	mux.HandleFunc(hub+"/logout", h.logoutPage)
	if h.gate.IdP() != nil {
		mux.HandleFunc(hub+"/oauth_login", h.oauthLogin)
		mux.HandleFunc(hub+"/oauth_callback", h.oauthCallback)
		mux.HandleFunc(hub+"/oauth_backchannel_logout", h.backchannelLogout)
	}
	mux.HandleFunc(hub+"/home", h.loggedIn(h.homePage))
	mux.HandleFunc(hub+"/spawn", h.loggedIn(h.spawnPage))
	mux.HandleFunc(hub+"/spawn/{name}", h.loggedIn(h.spawnPage))
	mux.HandleFunc(hub+"/spawn/{name}/{server}", h.loggedIn(h.spawnPage))
	mux.HandleFunc(hub+"/stop", h.loggedIn(h.stopPage))
	mux.HandleFunc(hub+"/token", h.loggedIn(h.tokenPage))
	mux.HandleFunc(hub+"/admin", h.loggedIn(h.adminPage))
	mux.HandleFunc(hub+"/accept-share", h.loggedIn(h.acceptSharePage))
	mux.HandleFunc(hub+"/token/revoke", h.loggedIn(h.revokeToken))
	mux.HandleFunc(hub+"/spawn-pending/{name}", h.loggedIn(h.spawnPendingPage))
	mux.HandleFunc(hub+"/spawn-pending/{name}/{server}", h.loggedIn(h.spawnPendingPage))
	mux.HandleFunc(hub+"/user/{name}/{rest...}", h.loggedIn(h.hubUserPage))
	mux.HandleFunc(hub+"/user-redirect/{rest...}", h.loggedIn(func(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
		http.Redirect(w, r, web.WithQuery(h.servers.FullURL(c.User.Name, "")+r.PathValue("rest"), r.URL.RawQuery), http.StatusFound)
	}))
	// /user-redirect/ lives outside /hub/, where the login cookie is not sent.
	mux.HandleFunc(h.prefix+"/user-redirect/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, web.WithQuery(hub+"/user-redirect/"+r.PathValue("rest"), r.URL.RawQuery), http.StatusFound)
	})
	mux.HandleFunc(hub+"/", func(w http.ResponseWriter, r *http.Request) {
		h.render.Error(w, r, http.StatusNotFound, "Page not found", r.URL.Path+" is not a page of this hub.")
	})
}

// loggedIn sends anonymous visitors to the login page and back.
func (h *Pages) loggedIn(fn func(http.ResponseWriter, *http.Request, *auth.Caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := h.gate.FromCookie(r)
		if errors.Is(err, auth.ErrXSRF) && r.Method == http.MethodPost {
			h.render.Error(w, r, http.StatusForbidden, "Form expired", "This form is stale or did not come from this hub. Go back, reload the page and try again.")
			return
		}
		if err != nil {
			http.Redirect(w, r, h.prefix+"/hub/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		fn(w, r, c)
	}
}

func (h *Pages) homePage(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	sv, err := h.store.Server(r.Context(), c.User.ID, "")
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	data := map[string]any{"Server": sv, "URL": h.servers.FullURL(c.User.Name, ""), "Started": short(time.Since(sv.Started)), "Active": since(sv.LastActivity)}
	data["Options"] = len(h.profiles.Offered(c.User)) > 0 // Start leads to the options form
	if err := h.namedServersOnHome(r.Context(), c.User, data); err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	if msg, failed := h.servers.LastFailure(sv); failed {
		reason, journal, _ := strings.Cut(strings.TrimPrefix(msg, "Spawn failed: "), "\nLast lines of the server's log:\n")
		data["LastError"] = map[string]string{"Reason": reason, "Journal": journal}
	}
	h.render.Render(w, r, http.StatusOK, "home.html", data, c)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// spawnUser is the user a spawn page acts for: yourself, or anyone if you are an admin.
func (h *Pages) spawnUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) (store.User, bool) {
	name := r.PathValue("name")
	if name == "" || name == c.User.Name {
		return c.User, true
	}
	if !c.User.Admin {
		h.render.Error(w, r, http.StatusForbidden, "Not allowed", "Only admins can start other users' servers.")
		return store.User{}, false
	}
	u, err := h.store.GetUser(r.Context(), name)
	if err != nil {
		h.render.Error(w, r, http.StatusNotFound, "No such user", "There is no user "+name+".")
		return u, false
	}
	return u, true
}

// spawnPage: GET asks to confirm (a link must not start servers), POST starts.
func (h *Pages) spawnPage(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := h.spawnUser(w, r, c)
	if !ok {
		return
	}
	next := r.FormValue("next")
	name := spawnServerName(r)
	sv, err := h.server(w, r, u, name)
	if err != nil {
		return
	}
	if sv.State == store.Running {
		http.Redirect(w, r, h.gate.SafeNextOr(next, h.servers.FullURL(u.Name, name)), http.StatusFound)
		return
	}
	if r.Method != http.MethodPost && sv.State != store.Spawning {
		h.render.Render(w, r, http.StatusOK, "spawn.html", h.spawnForm(r, u, sv, map[string]any{"Owner": u.Name, "Next": next, "ServerName": name}), c)
		return
	}
	if err := h.gate.FreshLogin(r.Context(), u); errors.Is(err, auth.ErrLoginExpired) {
		http.Redirect(w, r, h.prefix+"/hub/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	} else if err != nil {
		h.render.Error(w, r, http.StatusBadGateway, "Cannot start the server", err.Error())
		return
	}
	opts, err := h.chosenOptions(r, u, sv)
	if err != nil {
		h.profileRefused(w, r, err)
		return
	}
	if _, err := h.servers.Start(u, name, opts); err != nil {
		h.render.Error(w, r, http.StatusBadRequest, "Cannot start the server", strings.TrimPrefix(err.Error(), servers.ErrConflict.Error()+": "))
		return
	}
	http.Redirect(w, r, web.WithQuery(h.pendingURL(u.Name, name), url.Values{"next": {next}}.Encode()), http.StatusFound)
}

func (h *Pages) stopPage(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if r.Method != http.MethodPost {
		http.Redirect(w, r, h.prefix+"/hub/home", http.StatusFound)
		return
	}
	if owner := r.FormValue("user"); owner != "" {
		r.SetPathValue("name", owner) // an admin cancelling someone else's spawn
	}
	u, ok := h.spawnUser(w, r, c)
	if !ok {
		return
	}
	name, remove := r.PostFormValue("server"), r.PostFormValue("remove") != ""
	sv, err := h.server(w, r, u, name)
	if err != nil {
		return
	}
	if sv.State != store.Stopped || remove && sv.ID != 0 {
		stop := h.servers.Stop
		if remove {
			stop = h.servers.Remove
		}
		var done <-chan struct{}
		if done, err = stop(sv); err == nil {
			select {
			case <-done:
			case <-time.After(h.cfg.Spawner.SlowSpawnTimeout.D()):
			case <-r.Context().Done():
			}
		}
	}
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Cannot stop the server", err.Error())
		return
	}
	http.Redirect(w, r, h.prefix+"/hub/home", http.StatusFound)
}

func (h *Pages) spawnPendingPage(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := h.spawnUser(w, r, c)
	if !ok {
		return
	}
	name := r.PathValue("server")
	sv, err := h.server(w, r, u, name)
	if err != nil {
		return
	}
	target := h.gate.SafeNextOr(r.FormValue("next"), h.servers.FullURL(u.Name, name))
	if sv.State == store.Running {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	prog := h.servers.Progress(sv.ID)
	if prog == nil {
		http.Redirect(w, r, h.prefix+"/hub/home", http.StatusFound)
		return
	}
	events, _, _ := prog.Since(0)
	h.render.Render(w, r, http.StatusOK, "spawn_pending.html", map[string]any{
		"Owner": u.Name, "ServerName": name, "Next": target, "Events": events,
		"Timeout": short(h.cfg.Spawner.StartTimeout.D()), "ElapsedMS": time.Since(prog.Began()).Milliseconds(),
		// EventSource cannot set headers: the token that lets it use the cookie goes in the query.
		"ProgressURL": h.progressURL(u.Name, name) + "?" + url.Values{"_xsrf": {h.gate.XSRFToken(c.Session)}}.Encode(),
	}, c)
}

// hubUserPage is where /user/<name>/... lands when no server is routed there (JupyterHub's
// /hub/user/ handler): it can read the login cookie, which /user/ paths do not receive.
func (h *Pages) hubUserPage(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	name := r.PathValue("name")
	userPath := web.WithQuery(h.servers.Hosts().Origin(name)+h.prefix+"/user/"+name+"/"+r.PathValue("rest"), r.URL.RawQuery)
	if _, running := h.servers.Route(name, h.namedServerOf(r, name, r.PathValue("rest"))); running {
		http.Redirect(w, r, userPath, http.StatusFound)
		return
	}
	if c.User.Name != name && !c.User.Admin {
		h.render.Error(w, r, http.StatusNotFound, "Not found", "There is no server for you here.")
		return
	}
	u, err := h.store.GetUser(r.Context(), name)
	if err != nil {
		h.render.Error(w, r, http.StatusNotFound, "Not found", "There is no user "+name+".")
		return
	}
	server := h.namedServerOf(r, name, r.PathValue("rest"))
	sv, err := h.store.Server(r.Context(), u.ID, server)
	if err == nil && sv.State == store.Spawning {
		http.Redirect(w, r, web.WithQuery(h.pendingURL(name, server), url.Values{"next": {userPath}}.Encode()), http.StatusFound)
		return
	}
	h.render.Render(w, r, http.StatusFailedDependency, "not_running.html", map[string]any{
		"Owner": name, "ServerName": server, "Next": userPath, "Stopping": err == nil && sv.State == store.Stopping,
	}, c)
}
