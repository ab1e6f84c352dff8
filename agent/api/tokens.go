package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

func (a *API) tokenModel(ctx context.Context, u store.User, t store.Token) map[string]any {
	return map[string]any{
		"id":            t.APIID(),
		"kind":          "api_token",
		"user":          u.Name,
		"roles":         []string{},
		"scopes":        a.tokenScopes(ctx, u, t),
		"note":          t.Note,
		"created":       web.ISOTime(t.Created),
		"last_activity": web.ISOTime(t.LastActivity),
		"expires_at":    web.ISOTime(t.ExpiresAt),
		"session_id":    nilIfEmpty(t.SessionID),
		"oauth_client":  nilIfEmpty(t.OAuthClient),
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "read:tokens")
	if !ok {
		return
	}
	toks, err := a.store.Tokens(r.Context(), u.ID, store.KindAPI, store.KindOAuth)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	out := []map[string]any{}
	for _, t := range toks {
		out = append(out, a.tokenModel(r.Context(), u, t))
	}
	web.JSON(w, http.StatusOK, map[string]any{"api_tokens": out})
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "tokens")
	if !ok {
		return
	}
	var body struct {
		ExpiresIn *int64          `json:"expires_in"`
		Note      string          `json:"note"`
		Scopes    []string        `json:"scopes"`
		Roles     []string        `json:"roles"`
		Auth      json.RawMessage `json:"auth"` // credentials, read by passwordCaller
	}
	if err := a.decodeJSON(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	req := body.Scopes
	for _, role := range body.Roles { // deprecated, but old scripts still send roles
		switch role {
		case "user":
			req = append(req, scopes.UserRole...)
		case "admin":
			req = append(req, scopes.AdminRole...)
		case "token":
			req = append(req, "inherit")
		default:
			rs, ok := a.gate.RoleScopes(role)
			if !ok {
				web.Error(w, http.StatusBadRequest, "unknown role %q (known: user, admin, token and the [[role]]s of the config)", role)
				return
			}
			req = append(req, rs...)
		}
	}
	if len(req) == 0 {
		req = []string{"inherit"}
	}
	owner, err := a.gate.OwnerScopes(r.Context(), u)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	// A token may not hold more than its owner, nor more than whoever asks for it.
	if ok, unknown, msg := scopes.Grantable(req, u.Name, owner, c.Scopes); !ok {
		status := http.StatusForbidden
		if unknown {
			status = http.StatusBadRequest
		}
		web.Error(w, status, "%s", msg)
		return
	}
	t := store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: req, Note: body.Note}
	// As in JupyterHub, null and 0 mean a token that never expires.
	const maxExpiresIn = 100 * 365 * 24 * 3600 // past this, time.Duration would overflow
	if body.ExpiresIn != nil && *body.ExpiresIn != 0 {
		if *body.ExpiresIn < 0 || *body.ExpiresIn > maxExpiresIn {
			web.Error(w, http.StatusBadRequest, "expires_in must be a number of seconds from 1 to %d, or 0 or null for a token that never expires", maxExpiresIn)
			return
		}
		t.ExpiresAt = time.Now().Add(time.Duration(*body.ExpiresIn) * time.Second)
	}
	if t.Note == "" {
		t.Note = "Requested via API by " + c.User.Name
		if c.Service != nil {
			t.Note = "Requested via API by service " + c.Service.Name
		}
	}
	t, secret, err := a.store.CreateToken(r.Context(), t)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("token created", "user", u.Name, "token_id", t.APIID(), "by", c.Name())
	m := a.tokenModel(r.Context(), u, t)
	m["token"] = secret
	web.JSON(w, http.StatusCreated, m)
}

// userToken loads the token {id} of the user in the path, for a caller holding scope on them.
// A server's own token is not the user's to see or delete: it is 404 like a missing one.
func (a *API) userToken(w http.ResponseWriter, r *http.Request, c *auth.Caller, scope string) (store.User, store.Token, bool) {
	u, ok := a.targetUser(w, r, c, scope)
	if !ok {
		return u, store.Token{}, false
	}
	id, ok := store.ParseAPIID(r.PathValue("id"))
	var t store.Token
	var err error
	if ok {
		t, err = a.store.TokenByID(r.Context(), u.ID, id)
	}
	if !ok || err != nil || t.Kind == store.KindServer {
		web.Error(w, http.StatusNotFound, "no such token %q", r.PathValue("id"))
		return u, t, false
	}
	return u, t, true
}

func (a *API) getToken(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if u, t, ok := a.userToken(w, r, c, "read:tokens"); ok {
		web.JSON(w, http.StatusOK, a.tokenModel(r.Context(), u, t))
	}
}

func (a *API) deleteToken(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, t, ok := a.userToken(w, r, c, "tokens")
	if !ok {
		return
	}
	if err := a.store.DeleteToken(r.Context(), u.ID, t.ID); err != nil {
		a.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// tokenScopes are what a token can do, as JupyterHub 5 shows them: its scopes expanded and cut to
// what its owner holds today.
func (a *API) tokenScopes(ctx context.Context, u store.User, t store.Token) []string {
	owner, err := a.gate.OwnerScopes(ctx, u)
	if err != nil {
		// Show what the default roles give rather than fail the listing; the gate refuses the
		// token itself while the store cannot say more.
		a.log.Error("scopes of a token's owner", "user", u.Name, "err", err)
		owner = scopes.ForUser(u.Name, u.Admin)
	}
	return scopes.Intersect(scopes.Expand(t.Scopes, u.Name, owner), owner).List()
}
