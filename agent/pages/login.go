package pages

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// loginPage shows the login form; a POST checks a password with the authenticator (PAM). With an
// identity provider the page offers only the button that goes there.
func (h *Pages) loginPage(w http.ResponseWriter, r *http.Request) {
	idp := h.gate.IdP()
	next := h.gate.SafeNext(r.FormValue("next"))
	if r.Method != http.MethodPost || idp != nil {
		if _, err := h.gate.FromCookie(r); err == nil {
			http.Redirect(w, r, next, http.StatusFound)
			return
		}
		h.render.Render(w, r, http.StatusOK, "login.html", map[string]any{"Next": next, "OIDC": idp != nil, "XSRF": h.gate.LoginFormToken(w, r)}, nil)
		return
	}
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("username")))
	refuse := func(status int, msg string) {
		h.render.Render(w, r, status, "login.html", map[string]any{"Next": next, "Username": name, "Error": msg, "XSRF": h.gate.LoginFormToken(w, r)}, nil)
	}
	if !h.gate.CheckLoginForm(r) {
		h.log.Info("login form refused: no XSRF token from this browser's login page", "remote", h.gate.ClientAddr(r))
		refuse(http.StatusForbidden, "This login form expired or did not come from this hub. Log in again below.")
		return
	}
	if web.ValidName(name) != nil || r.PostFormValue("password") == "" {
		refuse(http.StatusForbidden, auth.ErrBadLogin.Error())
		return
	}
	if blocked, wait := h.gate.LoginThrottled(r, name); blocked {
		h.log.Warn("login throttled: too many failed logins", "user", name, "remote", h.gate.ClientAddr(r))
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		refuse(http.StatusTooManyRequests, fmt.Sprintf("Too many failed logins for this account or from your address. Try again in %s.", wait.Round(time.Second)+time.Second))
		return
	}
	id, err := h.auth.Authenticate(r.Context(), name, r.PostFormValue("password"))
	if errors.Is(err, auth.ErrBadLogin) {
		h.log.Info("login failed", "user", name, "remote", h.gate.ClientAddr(r))
		h.gate.LoginFailed(r, name)
		refuse(http.StatusForbidden, auth.ErrBadLogin.Error())
		return
	}
	if err != nil {
		h.log.Error("login error", "user", name, "err", err)
		refuse(http.StatusServiceUnavailable, "Login is not working right now; the administrator can see why in the hub's log.")
		return
	}
	admin, allowed := h.gate.Admission(id)
	if !allowed {
		h.log.Info("login refused: not in auth.allowed_users or auth.allowed_groups", "user", id.Name)
		refuse(http.StatusForbidden, "You ("+id.Name+") are not allowed to use this hub. Ask its administrator to add you.")
		return
	}
	h.gate.LoginSucceeded(name)
	u, err := h.gate.RecordLogin(r.Context(), id, admin, false)
	if err != nil {
		h.log.Error("login: record user", "user", id.Name, "err", err)
		refuse(http.StatusInternalServerError, "Could not record your login; try again.")
		return
	}
	h.startSession(w, r, u, store.Session{UserID: u.ID}, next)
}

// startSession sets the login cookie and sends the browser on.
func (h *Pages) startSession(w http.ResponseWriter, r *http.Request, u store.User, sess store.Session, next string) {
	if err := h.gate.StartSession(w, r, u, sess); err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Login failed", "Could not start a session; try again.")
		return
	}
	http.Redirect(w, r, next, http.StatusFound)
}

func (h *Pages) logoutPage(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, h.gate.EndSession(w, r), http.StatusFound)
}

const flowCookie = "jupyterhub-oauth-flow"

// oauthLogin starts a login at the identity provider.
func (h *Pages) oauthLogin(w http.ResponseWriter, r *http.Request) {
	idp := h.gate.IdP()
	authURL, flow, err := idp.Begin(r.Context(), h.gate.SafeNext(r.FormValue("next")))
	if err != nil {
		h.log.Warn("cannot start a login at the identity provider", "err", err)
		h.loginError(w, r, http.StatusBadGateway, idp.Explain(err))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: flowCookie, Value: flow, Path: h.prefix + "/hub/", HttpOnly: true, MaxAge: 600,
		Secure: h.gate.Secure(r), SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, authURL, http.StatusFound)
}

// oauthCallback finishes a login at the identity provider: the provider's answer is checked, the
// user admitted (or not) by their groups, and a hub session starts.
func (h *Pages) oauthCallback(w http.ResponseWriter, r *http.Request) {
	idp := h.gate.IdP()
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: "", Path: h.prefix + "/hub/", MaxAge: -1, HttpOnly: true})
	flow := ""
	if c, err := r.Cookie(flowCookie); err == nil {
		flow = c.Value
	}
	login, err := idp.Finish(r.Context(), flow, r.URL.Query())
	if err != nil {
		h.log.Warn("identity provider login failed", "err", err, "remote", r.RemoteAddr)
		h.loginError(w, r, http.StatusForbidden, idp.Explain(err))
		return
	}
	if err := web.ValidName(login.Name); err != nil {
		h.log.Warn("identity provider sent an unusable username", "username", login.Name, "err", err)
		h.loginError(w, r, http.StatusForbidden, fmt.Sprintf("Your username %q cannot be used on this hub: %v", login.Name, err))
		return
	}
	admin, allowed := h.gate.Admission(login.Identity)
	if !allowed {
		// The allowed groups go to the log only: on the page they would tell anyone with an
		// account at the provider which group to talk their way into.
		h.log.Info("login refused: not in auth.allowed_users or auth.allowed_groups", "user", login.Name, "groups", login.Groups,
			"allowed_groups", h.cfg.Auth.AllowedGroups)
		h.loginError(w, r, http.StatusForbidden, fmt.Sprintf(
			"You (%s) are not allowed to use this hub. Ask its administrator to add you.", login.Name))
		return
	}
	u, err := h.gate.RecordLogin(r.Context(), login.Identity, admin, true)
	if err == nil {
		err = h.gate.KeepRemoteLogin(r.Context(), u, login.State)
	}
	if err != nil {
		h.log.Error("login: record user", "user", login.Name, "err", err)
		h.loginError(w, r, http.StatusInternalServerError, "Could not record your login; try again.")
		return
	}
	h.startSession(w, r, u, store.Session{UserID: u.ID, IdPSubject: login.Subject, IdPSession: login.Session}, h.gate.SafeNext(login.Next))
}

func (h *Pages) loginError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render.Render(w, r, status, "login.html", map[string]any{"Error": msg, "OIDC": h.gate.IdP() != nil, "Next": h.prefix + "/hub/home"}, nil)
}

// backchannelLogout is where the provider tells the hub that a user logged out elsewhere.
func (h *Pages) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		web.Error(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	sub, sid, err := h.gate.IdP().VerifyLogoutToken(r.Context(), r.PostFormValue("logout_token"))
	if err != nil {
		h.log.Warn("back-channel logout refused", "err", err, "remote", r.RemoteAddr)
		web.Error(w, http.StatusBadRequest, "invalid logout token")
		return
	}
	n, err := h.store.DeleteIdPSessions(r.Context(), sub, sid)
	if err != nil {
		web.WriteErr(w, err)
		return
	}
	h.log.Info("back-channel logout", "subject", sub, "idp_session", sid, "hub_sessions_ended", n)
	w.WriteHeader(http.StatusOK)
}
