// Package oauth is the OAuth2 provider single-user servers log their visitors in with: a browser
// sent to /hub/api/oauth2/authorize gets a code for its server (after the hub's own login), and
// the server exchanges it at /hub/api/oauth2/token for a token that identifies the visitor.
package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/pages"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// Provider serves the authorize and token endpoints.
type Provider struct {
	prefix   string
	tokenTTL time.Duration // how long an access token lives: as long as a login session
	store    *store.Store
	gate     *auth.Gate
	render   *pages.Renderer
	log      *slog.Logger
}

// New makes the provider; prefix is the hub's base URL without its trailing slash.
func New(prefix string, tokenTTL time.Duration, st *store.Store, gate *auth.Gate, render *pages.Renderer, log *slog.Logger) *Provider {
	return &Provider{prefix: prefix, tokenTTL: tokenTTL, store: st, gate: gate, render: render, log: log}
}

// Register mounts the endpoints under <base>/hub/api/oauth2/.
func (h *Provider) Register(mux *http.ServeMux) {
	mux.HandleFunc(h.prefix+"/hub/api/oauth2/authorize", h.authorize)
	mux.HandleFunc(h.prefix+"/hub/api/oauth2/token", h.token)
}

// authorize is where a single-user server sends the browser to learn who it is. The hub
// needs its own login first; a user's own server gets a code at once, anyone else with access
// (an admin) is asked to confirm, and everyone else is refused.
func (h *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		h.render.Error(w, r, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	q := r.URL.Query()
	c, err := h.gate.FromCookie(r)
	if err != nil {
		http.Redirect(w, r, h.prefix+"/hub/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	client, err := h.store.Client(r.Context(), q.Get("client_id"))
	if err != nil {
		h.render.Error(w, r, http.StatusBadRequest, "Unknown OAuth client",
			"The server that sent you here is not registered with the hub (client_id "+strconv.Quote(q.Get("client_id"))+"). If it is your own server, restart it from the home page.")
		return
	}
	if ru := q.Get("redirect_uri"); ru != "" && !sameRedirect(ru, client.RedirectURI) {
		h.render.Error(w, r, http.StatusBadRequest, "Bad redirect", "redirect_uri does not match the one registered for "+client.ID+".")
		return
	}
	if rt := q.Get("response_type"); rt != "code" {
		h.render.Error(w, r, http.StatusBadRequest, "Bad OAuth request", "response_type must be \"code\".")
		return
	}
	if client.Service != "" {
		if !h.serviceLogin(w, r, c, client) {
			return
		}
	} else if !h.serverLogin(w, r, c, client) {
		return
	}
	granted := client.AllowedScopes
	if s := strings.Fields(q.Get("scope")); len(s) > 0 {
		granted = nil
		for _, want := range s {
			for _, ok := range client.AllowedScopes {
				if want == ok {
					granted = append(granted, want)
				}
			}
		}
	}
	if granted == nil {
		granted = []string{}
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge != "" {
		if method == "" {
			method = "plain" // RFC 7636 §4.3
		}
		if method != "S256" && method != "plain" {
			h.render.Error(w, r, http.StatusBadRequest, "Bad OAuth request", "code_challenge_method must be S256 or plain.")
			return
		}
	}
	code, err := h.store.CreateCode(r.Context(), store.OAuthCode{
		ClientID: client.ID, UserID: c.User.ID, RedirectURI: client.RedirectURI, Scopes: granted,
		SessionID: c.Session.ID, ExpiresAt: time.Now().Add(5 * time.Minute),
		Challenge: challenge, ChallengeMethod: method,
	})
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Login failed", err.Error())
		return
	}
	target, _ := url.Parse(client.RedirectURI)
	tq := target.Query()
	tq.Set("code", code)
	if st := q.Get("state"); st != "" {
		tq.Set("state", st)
	}
	target.RawQuery = tq.Encode()
	http.Redirect(w, r, target.String(), http.StatusFound)
}

// sameRedirect compares redirect URIs; single-user servers send a relative one, and a client may
// also send it absolute with this hub's host.
func sameRedirect(got, registered string) bool {
	if got == registered {
		return true
	}
	u, err := url.Parse(got)
	return err == nil && u.Path == registered && u.RawQuery == "" && (u.Scheme == "http" || u.Scheme == "https")
}

func (h *Provider) clientServer(r *http.Request, c store.OAuthClient) (store.User, string, error) {
	sv, err := h.store.ServerByID(r.Context(), c.ServerID)
	if err != nil {
		return store.User{}, "", err
	}
	u, err := h.store.UserByID(r.Context(), sv.UserID)
	return u, sv.Name, err
}

// token exchanges a code for an access token (RFC 6749 §4.1.3). The client authenticates with
// its secret, which is the server's own API token.
func (h *Provider) token(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, desc string) {
		w.Header().Set("Cache-Control", "no-store")
		web.JSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "cannot parse form: "+err.Error())
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if gt := r.PostForm.Get("grant_type"); gt != "authorization_code" {
		fail(http.StatusBadRequest, "unsupported_grant_type", "only authorization_code is supported")
		return
	}
	client, err := h.store.Client(r.Context(), id)
	if err != nil || subtle.ConstantTimeCompare([]byte(store.Hash(secret)), []byte(client.SecretHash)) != 1 {
		fail(http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	code, err := h.store.ConsumeCode(r.Context(), r.PostForm.Get("code"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && code.ClientID != client.ID) {
		fail(http.StatusBadRequest, "invalid_grant", "the code is unknown, used or expired")
		return
	}
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	if ru := r.PostForm.Get("redirect_uri"); ru != "" && !sameRedirect(ru, code.RedirectURI) {
		fail(http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	}
	if !pkceVerified(code, r.PostForm.Get("code_verifier")) {
		fail(http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge of the authorization request")
		return
	}
	ttl := h.tokenTTL
	tok, secretTok, err := h.store.CreateToken(r.Context(), store.Token{
		UserID: code.UserID, Kind: store.KindOAuth, Scopes: code.Scopes, SessionID: code.SessionID,
		OAuthClient: client.ID, ExpiresAt: time.Now().Add(ttl), Note: client.Description,
	})
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	h.log.Debug("oauth token issued", "client", client.ID, "token_id", tok.APIID())
	w.Header().Set("Cache-Control", "no-store")
	web.JSON(w, http.StatusOK, map[string]any{
		"access_token": secretTok,
		"token_type":   "Bearer",
		"expires_in":   int(ttl.Seconds()),
		"scope":        strings.Join(code.Scopes, " "),
	})
}

// pkceVerified checks RFC 7636's code_verifier against the challenge the code was issued for. A
// code issued without a challenge needs no verifier (jupyterhub-singleuser 3 sends none).
func pkceVerified(code store.OAuthCode, verifier string) bool {
	switch code.ChallengeMethod {
	case "":
		return true
	case "S256":
		sum := sha256.Sum256([]byte(verifier))
		return verifier != "" && subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(code.Challenge)) == 1
	default: // plain
		return verifier != "" && subtle.ConstantTimeCompare([]byte(verifier), []byte(code.Challenge)) == 1
	}
}

// serverLogin decides a login to a user server: its owner at once, anyone else with access
// (an admin, a share) after confirming; false when it has answered the request itself.
func (h *Provider) serverLogin(w http.ResponseWriter, r *http.Request, c *auth.Caller, client store.OAuthClient) bool {
	owner, server, err := h.clientServer(r, client)
	if err != nil {
		h.render.Error(w, r, http.StatusBadRequest, "Server gone", "The server behind this login no longer exists.")
		return false
	}
	if !c.Scopes.Allows("access:servers", scopes.Target{User: owner.Name, Groups: owner.Groups, Server: server, HasServer: true}) {
		h.log.Info("oauth access refused", "user", c.User.Name, "server", owner.Name+"/"+server)
		h.render.Error(w, r, http.StatusForbidden, "Access denied",
			"You are logged in as "+c.User.Name+", who may not use "+owner.Name+"'s server.")
		return false
	}
	if owner.ID != c.User.ID {
		// Someone else's server: an admin must confirm, so that a link cannot silently log them in.
		if r.Method != http.MethodPost { // a POST got past FromCookie only with the XSRF token
			h.render.Render(w, r, http.StatusOK, "oauth.html", map[string]any{
				"Owner": owner.Name, "Server": server, "Client": client.Description, "Action": r.URL.RequestURI(),
			}, c)
			return false
		}
	}
	return true
}

// serviceLogin decides a login to a [[service]] (HubOAuth): callers holding
// access:services!service=<name> are let in, after confirming unless the service says
// oauth_no_confirm.
func (h *Provider) serviceLogin(w http.ResponseWriter, r *http.Request, c *auth.Caller, client store.OAuthClient) bool {
	sv := h.gate.ServiceByName(client.Service)
	if sv == nil {
		h.render.Error(w, r, http.StatusBadRequest, "Service gone", "The service behind this login is no longer configured.")
		return false
	}
	if !c.Scopes.Allows("access:services", scopes.Target{Service: sv.Name}) {
		h.log.Info("oauth access refused", "user", c.User.Name, "service", sv.Name)
		h.render.Error(w, r, http.StatusForbidden, "Access denied", "You ("+c.User.Name+") may not use the service "+sv.Name+".")
		return false
	}
	if !sv.OAuthNoConfirm && r.Method != http.MethodPost {
		h.render.Render(w, r, http.StatusOK, "oauth.html", map[string]any{
			"Service": sv.Name, "Client": client.Description, "Action": r.URL.RequestURI(),
		}, c)
		return false
	}
	return true
}
