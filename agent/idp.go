package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// ErrLoginExpired is what an identity provider reports when a user's login there has ended (a
// revoked or expired refresh token): the user must log in again before they can spawn.
var ErrLoginExpired = errors.New("login at the identity provider has ended; log in again")

// IdentityProvider logs users in somewhere else and sends the browser back to
// /hub/oauth_callback (OpenID Connect; the oidc package does this).
type IdentityProvider interface {
	// Begin returns the provider URL to send the browser to, and a flow value the hub keeps in
	// a short-lived cookie until the callback.
	Begin(ctx context.Context, next string) (authURL, flow string, err error)
	// Finish completes the login from the callback's query.
	Finish(ctx context.Context, flow string, query url.Values) (RemoteLogin, error)
	// Refresh renews a login's tokens; ErrLoginExpired when that is no longer possible.
	Refresh(ctx context.Context, state []byte) (RemoteLogin, error)
	// LogoutURL is where to send the browser to end the provider's session too ("" if none).
	LogoutURL(state []byte) string
	// VerifyLogoutToken checks a back-channel logout token and says whose sessions end.
	VerifyLogoutToken(ctx context.Context, raw string) (subject, session string, err error)
	// Explain turns an error into a sentence for the user.
	Explain(err error) string
}

// RemoteLogin is a login an identity provider vouched for.
type RemoteLogin struct {
	Identity
	Subject string    // the provider's id of the user
	Session string    // the provider's session id, if it sends one
	State   []byte    // the provider's tokens, opaque to the hub; stored sealed
	Expiry  time.Time // when the access token in State expires (zero: unknown)
	Next    string    // what Begin was given
}

const flowCookie = "jupyterhub-oauth-flow"

// oauthLogin starts a login at the identity provider.
func (h *Hub) oauthLogin(w http.ResponseWriter, r *http.Request) {
	authURL, flow, err := h.idp.Begin(r.Context(), h.safeNext(r.FormValue("next")))
	if err != nil {
		h.log.Warn("cannot start a login at the identity provider", "err", err)
		h.loginError(w, r, http.StatusBadGateway, h.idp.Explain(err))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: flowCookie, Value: flow, Path: h.prefix + "/hub/", HttpOnly: true, MaxAge: 600,
		Secure: h.secureRequest(r), SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, authURL, http.StatusFound)
}

// oauthCallback finishes a login at the identity provider: the provider's answer is checked, the
// user admitted (or not) by their groups, and a hub session starts.
func (h *Hub) oauthCallback(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: "", Path: h.prefix + "/hub/", MaxAge: -1, HttpOnly: true})
	flow := ""
	if c, err := r.Cookie(flowCookie); err == nil {
		flow = c.Value
	}
	login, err := h.idp.Finish(r.Context(), flow, r.URL.Query())
	if err != nil {
		h.log.Warn("identity provider login failed", "err", err, "remote", r.RemoteAddr)
		h.loginError(w, r, http.StatusForbidden, h.idp.Explain(err))
		return
	}
	if err := validName(login.Name); err != nil {
		h.log.Warn("identity provider sent an unusable username", "username", login.Name, "err", err)
		h.loginError(w, r, http.StatusForbidden, fmt.Sprintf("Your username %q cannot be used on this hub: %v", login.Name, err))
		return
	}
	admin, allowed := h.admission(login.Identity)
	if !allowed {
		h.log.Info("login refused: not in auth.allowed_users or auth.allowed_groups", "user", login.Name, "groups", login.Groups)
		h.loginError(w, r, http.StatusForbidden, fmt.Sprintf(
			"You (%s) are not allowed to use this hub: you are not in any of the groups that may (%v). Ask its administrator to add you.",
			login.Name, h.cfg.Auth.AllowedGroups))
		return
	}
	u, err := h.recordLogin(r.Context(), login.Identity, admin, true)
	if err == nil {
		err = h.store.SetAuthState(r.Context(), u.ID, h.sealer.seal(login.State))
	}
	if err != nil {
		h.log.Error("login: record user", "user", login.Name, "err", err)
		h.loginError(w, r, http.StatusInternalServerError, "Could not record your login; try again.")
		return
	}
	h.startSession(w, r, u, store.Session{UserID: u.ID, IdPSubject: login.Subject, IdPSession: login.Session}, h.safeNext(login.Next))
}

func (h *Hub) loginError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.pages.render(w, r, status, "login.html", map[string]any{"Error": msg, "OIDC": h.idp != nil, "Next": h.prefix + "/hub/home"}, nil)
}

// backchannelLogout is where the provider tells the hub that a user logged out elsewhere.
func (h *Hub) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		apiError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	sub, sid, err := h.idp.VerifyLogoutToken(r.Context(), r.PostFormValue("logout_token"))
	if err != nil {
		h.log.Warn("back-channel logout refused", "err", err, "remote", r.RemoteAddr)
		apiError(w, http.StatusBadRequest, "invalid logout token")
		return
	}
	n, err := h.store.DeleteIdPSessions(r.Context(), sub, sid)
	if err != nil {
		writeErr(w, err)
		return
	}
	h.log.Info("back-channel logout", "subject", sub, "idp_session", sid, "hub_sessions_ended", n)
	w.WriteHeader(http.StatusOK)
}

// freshLogin makes sure a user who logged in through the provider still may: their tokens are
// refreshed when about to expire, so a server never starts with a dead token. ErrLoginExpired
// means they must log in again.
func (h *Hub) freshLogin(ctx context.Context, u store.User) error {
	if h.idp == nil {
		return nil
	}
	sealed, err := h.store.AuthState(ctx, u.ID)
	if err != nil || sealed == nil {
		return err // users made through the API have no provider login to refresh
	}
	state, err := h.sealer.open(sealed)
	if err != nil {
		return err
	}
	var meta struct {
		Expiry time.Time `json:"expiry"`
	}
	json.Unmarshal(state, &meta)
	if meta.Expiry.IsZero() || time.Until(meta.Expiry) > h.cfg.Auth.OIDC.RefreshBefore.D() {
		return nil
	}
	login, err := h.idp.Refresh(ctx, state)
	if errors.Is(err, ErrLoginExpired) {
		h.log.Info("refresh refused by the identity provider; the user must log in again", "user", u.Name)
		h.store.SetAuthState(ctx, u.ID, nil)
		h.store.DeleteUserSessions(ctx, u.ID)
		return err
	}
	if err != nil {
		return fmt.Errorf("refresh login of %s at the identity provider: %w", u.Name, err)
	}
	h.log.Info("refreshed login at the identity provider", "user", u.Name, "expiry", login.Expiry)
	return h.store.SetAuthState(ctx, u.ID, h.sealer.seal(login.State))
}

// authStateModel is the user's provider tokens for callers with admin:auth_state.
func (h *Hub) authStateModel(ctx context.Context, u store.User) any {
	sealed, err := h.store.AuthState(ctx, u.ID)
	if err != nil || sealed == nil {
		return nil
	}
	state, err := h.sealer.open(sealed)
	if err != nil {
		return nil
	}
	return json.RawMessage(state)
}
