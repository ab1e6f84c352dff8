package agent

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// pages renders the hub's server-side HTML. Each page is the layout plus one content template.
type pages struct {
	h     *Hub
	pages map[string]*template.Template
}

func newPages(h *Hub) (*pages, error) {
	p := &pages{h: h, pages: map[string]*template.Template{}}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", base, err)
		}
		p.pages[base] = t
	}
	return p, nil
}

// render writes a page; c may be nil for anonymous pages.
func (p *pages) render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any, c *caller) {
	if data == nil {
		data = map[string]any{}
	}
	data["Prefix"] = p.h.prefix
	if c != nil {
		data["User"] = c.user
		if c.session != nil {
			data["XSRF"] = p.h.xsrfToken(c.session)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := p.pages[name].ExecuteTemplate(w, "layout", data); err != nil {
		p.h.log.Error("render page", "page", name, "err", err)
	}
}

func (p *pages) error(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	p.render(w, r, status, "error.html", map[string]any{"Status": status, "Title": title, "Detail": detail}, nil)
}

func (h *Hub) pageRoutes(mux *http.ServeMux) {
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
	if h.idp != nil {
		mux.HandleFunc(hub+"/oauth_login", h.oauthLogin)
		mux.HandleFunc(hub+"/oauth_callback", h.oauthCallback)
		mux.HandleFunc(hub+"/oauth_backchannel_logout", h.backchannelLogout)
	}
	mux.HandleFunc(hub+"/home", h.loggedIn(h.homePage))
	mux.HandleFunc(hub+"/spawn", h.loggedIn(h.spawnPage))
	mux.HandleFunc(hub+"/spawn/{name}", h.loggedIn(h.spawnPage))
	mux.HandleFunc(hub+"/stop", h.loggedIn(h.stopPage))
	mux.HandleFunc(hub+"/spawn-pending/{name}", h.loggedIn(h.spawnPendingPage))
	mux.HandleFunc(hub+"/user/{name}/{rest...}", h.loggedIn(h.hubUserPage))
	mux.HandleFunc(hub+"/user-redirect/{rest...}", h.loggedIn(func(w http.ResponseWriter, r *http.Request, c *caller) {
		http.Redirect(w, r, withQuery(h.serverURL(c.user.Name, "")+r.PathValue("rest"), r.URL.RawQuery), http.StatusFound)
	}))
	// /user-redirect/ lives outside /hub/, where the login cookie is not sent.
	mux.HandleFunc(h.prefix+"/user-redirect/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, withQuery(hub+"/user-redirect/"+r.PathValue("rest"), r.URL.RawQuery), http.StatusFound)
	})
	mux.HandleFunc(hub+"/", func(w http.ResponseWriter, r *http.Request) {
		h.pages.error(w, r, http.StatusNotFound, "Page not found", r.URL.Path+" is not a page of this hub.")
	})
}

func withQuery(path, rawQuery string) string {
	if rawQuery == "" {
		return path
	}
	return path + "?" + rawQuery
}

// loggedIn sends anonymous visitors to the login page and back.
func (h *Hub) loggedIn(fn func(http.ResponseWriter, *http.Request, *caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := h.cookieCaller(r)
		if err != nil {
			http.Redirect(w, r, h.prefix+"/hub/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		if r.Method == http.MethodPost && !h.checkXSRF(r, c) {
			h.pages.error(w, r, http.StatusForbidden, "Form expired", "This form is stale or did not come from this hub. Go back, reload the page and try again.")
			return
		}
		fn(w, r, c)
	}
}

func (h *Hub) loginPage(w http.ResponseWriter, r *http.Request) {
	next := h.safeNext(r.FormValue("next"))
	if r.Method != http.MethodPost || h.idp != nil {
		if _, err := h.cookieCaller(r); err == nil {
			http.Redirect(w, r, next, http.StatusFound)
			return
		}
		h.pages.render(w, r, http.StatusOK, "login.html", map[string]any{"Next": next, "OIDC": h.idp != nil}, nil)
		return
	}
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("username")))
	refuse := func(status int, msg string) {
		h.pages.render(w, r, status, "login.html", map[string]any{"Next": next, "Username": name, "Error": msg}, nil)
	}
	if validName(name) != nil || r.PostFormValue("password") == "" {
		refuse(http.StatusForbidden, ErrBadLogin.Error())
		return
	}
	id, err := h.auth.Authenticate(r.Context(), name, r.PostFormValue("password"))
	if errors.Is(err, ErrBadLogin) {
		h.log.Info("login failed", "user", name, "remote", r.RemoteAddr)
		refuse(http.StatusForbidden, ErrBadLogin.Error())
		return
	}
	if err != nil {
		h.log.Error("login error", "user", name, "err", err)
		refuse(http.StatusServiceUnavailable, "Login is not working right now; the administrator can see why in the hub's log.")
		return
	}
	admin, allowed := h.admission(id)
	if !allowed {
		h.log.Info("login refused: not in auth.allowed_users or auth.allowed_groups", "user", id.Name)
		refuse(http.StatusForbidden, "You ("+id.Name+") are not allowed to use this hub. Ask its administrator to add you.")
		return
	}
	u, err := h.recordLogin(r.Context(), id, admin, false)
	if err != nil {
		h.log.Error("login: record user", "user", id.Name, "err", err)
		refuse(http.StatusInternalServerError, "Could not record your login; try again.")
		return
	}
	h.startSession(w, r, u, store.Session{UserID: u.ID}, next)
}

// recordLogin creates or updates the user: their groups follow the authenticator's on every
// login. With revokeAdmin, admin also follows the configuration both ways (an identity provider's
// groups are the truth); otherwise login only ever grants it.
func (h *Hub) recordLogin(ctx context.Context, id Identity, admin, revokeAdmin bool) (store.User, error) {
	u, err := h.store.GetUser(ctx, id.Name)
	if errors.Is(err, store.ErrNotFound) {
		u, err = h.store.CreateUser(ctx, id.Name, admin)
	}
	if err != nil {
		return u, err
	}
	groups := id.Groups
	patch := store.UserPatch{Groups: &groups}
	if admin || revokeAdmin {
		patch.Admin = &admin
	}
	if u.Admin && !admin && revokeAdmin {
		h.log.Info("admin rights removed: no longer in auth.admin_users or auth.admin_groups", "user", u.Name)
	}
	return h.store.UpdateUser(ctx, u.Name, patch)
}

// startSession sets the login cookie and sends the browser on.
func (h *Hub) startSession(w http.ResponseWriter, r *http.Request, u store.User, sess store.Session, next string) {
	sess, secret, err := h.store.CreateSession(r.Context(), sess, h.cfg.Hub.CookieMaxAge.D())
	if err != nil {
		h.pages.error(w, r, http.StatusInternalServerError, "Login failed", "Could not start a session; try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: loginCookie, Value: h.sign(secret), Path: h.prefix + "/hub/", HttpOnly: true,
		Secure: h.secureRequest(r), SameSite: http.SameSiteLaxMode, MaxAge: int(h.cfg.Hub.CookieMaxAge.D().Seconds()),
	})
	h.log.Info("login", "user", u.Name, "admin", u.Admin, "groups", u.Groups, "session", sess.ID, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusFound)
}

// admission applies auth.allowed_* and auth.admin_*. With no allow list, every account the
// authenticator accepts may log in; admins are always allowed.
func (h *Hub) admission(id Identity) (admin, allowed bool) {
	a := h.cfg.Auth
	inAny := func(list []string) bool {
		for _, g := range id.Groups {
			if slices.Contains(list, g) {
				return true
			}
		}
		return false
	}
	admin = slices.Contains(a.AdminUsers, id.Name) || inAny(a.AdminGroups)
	open := len(a.AllowedUsers) == 0 && len(a.AllowedGroups) == 0
	allowed = admin || open || slices.Contains(a.AllowedUsers, id.Name) || inAny(a.AllowedGroups)
	return admin, allowed
}

// logoutPage ends the login session, which also revokes the OAuth tokens issued under it, so
// the user's server cookies stop working at their next check.
func (h *Hub) logoutPage(w http.ResponseWriter, r *http.Request) {
	target := h.prefix + "/hub/login"
	if c, err := h.cookieCaller(r); err == nil {
		if err := h.store.DeleteSession(r.Context(), c.session.ID); err != nil {
			h.log.Error("logout", "user", c.user.Name, "err", err)
		}
		if h.idp != nil {
			// End the provider's session too, or the next login would be silent and instant.
			if sealed, _ := h.store.AuthState(r.Context(), c.user.ID); sealed != nil {
				if state, err := h.sealer.open(sealed); err == nil {
					if u := h.idp.LogoutURL(state); u != "" {
						target = u
					}
				}
				h.store.SetAuthState(r.Context(), c.user.ID, nil)
			}
		}
		h.log.Info("logout", "user", c.user.Name)
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: h.prefix + "/hub/", MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, target, http.StatusFound)
}

func (h *Hub) homePage(w http.ResponseWriter, r *http.Request, c *caller) {
	sv, err := h.store.Server(r.Context(), c.user.ID, "")
	if err != nil {
		h.pages.error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	data := map[string]any{"Server": sv, "URL": h.serverURL(c.user.Name, ""), "Started": ago(sv.Started), "Active": ago(sv.LastActivity)}
	h.mu.Lock()
	if p := h.spawns[sv.ID]; p != nil && sv.State == store.Stopped {
		if ev := p.last(); ev.Failed {
			data["LastError"] = ev.Message
		}
	}
	h.mu.Unlock()
	h.pages.render(w, r, http.StatusOK, "home.html", data, c)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// spawnUser is the user a spawn page acts for: yourself, or anyone if you are an admin.
func (h *Hub) spawnUser(w http.ResponseWriter, r *http.Request, c *caller) (store.User, bool) {
	name := r.PathValue("name")
	if name == "" || name == c.user.Name {
		return c.user, true
	}
	if !c.user.Admin {
		h.pages.error(w, r, http.StatusForbidden, "Not allowed", "Only admins can start other users' servers.")
		return store.User{}, false
	}
	u, err := h.store.GetUser(r.Context(), name)
	if err != nil {
		h.pages.error(w, r, http.StatusNotFound, "No such user", "There is no user "+name+".")
		return u, false
	}
	return u, true
}

// spawnPage: GET asks to confirm (a link must not start servers), POST starts.
func (h *Hub) spawnPage(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.spawnUser(w, r, c)
	if !ok {
		return
	}
	next := r.FormValue("next")
	sv, err := h.store.Server(r.Context(), u.ID, "")
	if err != nil {
		h.pages.error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	if sv.State == store.Running {
		http.Redirect(w, r, h.safeNextOr(next, h.serverURL(u.Name, "")), http.StatusFound)
		return
	}
	if r.Method != http.MethodPost && sv.State != store.Spawning {
		h.pages.render(w, r, http.StatusOK, "spawn.html", map[string]any{"Owner": u.Name, "Next": next}, c)
		return
	}
	if err := h.freshLogin(r.Context(), u); errors.Is(err, ErrLoginExpired) {
		http.Redirect(w, r, h.prefix+"/hub/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	} else if err != nil {
		h.pages.error(w, r, http.StatusBadGateway, "Cannot start the server", err.Error())
		return
	}
	if _, err := h.startServer(u, "", nil); err != nil {
		h.pages.error(w, r, http.StatusBadRequest, "Cannot start the server", err.Error())
		return
	}
	http.Redirect(w, r, withQuery(h.prefix+"/hub/spawn-pending/"+u.Name, url.Values{"next": {next}}.Encode()), http.StatusFound)
}

func (h *Hub) safeNextOr(next, fallback string) string {
	if next == "" {
		return fallback
	}
	return h.safeNext(next)
}

func (h *Hub) stopPage(w http.ResponseWriter, r *http.Request, c *caller) {
	if r.Method != http.MethodPost {
		http.Redirect(w, r, h.prefix+"/hub/home", http.StatusFound)
		return
	}
	u, ok := h.spawnUser(w, r, c)
	if !ok {
		return
	}
	sv, err := h.store.Server(r.Context(), u.ID, "")
	if err == nil && sv.State != store.Stopped {
		var done <-chan struct{}
		if done, err = h.stopServer(sv); err == nil {
			select {
			case <-done:
			case <-time.After(h.cfg.Spawner.SlowSpawnTimeout.D()):
			case <-r.Context().Done():
			}
		}
	}
	if err != nil {
		h.pages.error(w, r, http.StatusInternalServerError, "Cannot stop the server", err.Error())
		return
	}
	http.Redirect(w, r, h.prefix+"/hub/home", http.StatusFound)
}

func (h *Hub) spawnPendingPage(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.spawnUser(w, r, c)
	if !ok {
		return
	}
	sv, err := h.store.Server(r.Context(), u.ID, "")
	if err != nil {
		h.pages.error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	target := h.safeNextOr(r.FormValue("next"), h.serverURL(u.Name, ""))
	if sv.State == store.Running {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	h.mu.Lock()
	prog := h.spawns[sv.ID]
	h.mu.Unlock()
	if prog == nil {
		http.Redirect(w, r, h.prefix+"/hub/home", http.StatusFound)
		return
	}
	events, _, _ := prog.since(0)
	h.pages.render(w, r, http.StatusOK, "spawn_pending.html", map[string]any{
		"Owner": u.Name, "Next": target, "Events": events,
		"ProgressURL": h.prefix + "/hub/api/users/" + u.Name + "/server/progress",
	}, c)
}

// hubUserPage is where /user/<name>/... lands when no server is routed there (JupyterHub's
// /hub/user/ handler): it can read the login cookie, which /user/ paths do not receive.
func (h *Hub) hubUserPage(w http.ResponseWriter, r *http.Request, c *caller) {
	name := r.PathValue("name")
	userPath := withQuery(h.prefix+"/user/"+name+"/"+r.PathValue("rest"), r.URL.RawQuery)
	h.mu.Lock()
	_, running := h.routes[routeKey(name, "")]
	h.mu.Unlock()
	if running {
		http.Redirect(w, r, userPath, http.StatusFound)
		return
	}
	if c.user.Name != name && !c.user.Admin {
		h.pages.error(w, r, http.StatusNotFound, "Not found", "There is no server for you here.")
		return
	}
	u, err := h.store.GetUser(r.Context(), name)
	if err != nil {
		h.pages.error(w, r, http.StatusNotFound, "Not found", "There is no user "+name+".")
		return
	}
	sv, err := h.store.Server(r.Context(), u.ID, "")
	if err == nil && sv.State == store.Spawning {
		http.Redirect(w, r, withQuery(h.prefix+"/hub/spawn-pending/"+name, url.Values{"next": {userPath}}.Encode()), http.StatusFound)
		return
	}
	h.pages.render(w, r, http.StatusFailedDependency, "not_running.html", map[string]any{
		"Owner": name, "Next": userPath, "Stopping": err == nil && sv.State == store.Stopping,
	}, c)
}
