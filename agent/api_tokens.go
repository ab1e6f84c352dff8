package agent

import (
	"net/http"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

func (h *Hub) tokenModel(u store.User, t store.Token) map[string]any {
	return map[string]any{
		"id":            t.APIID(),
		"kind":          "api_token",
		"user":          u.Name,
		"roles":         []string{},
		"scopes":        t.Scopes,
		"note":          t.Note,
		"created":       isoTime(t.Created),
		"last_activity": isoTime(t.LastActivity),
		"expires_at":    isoTime(t.ExpiresAt),
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

func (h *Hub) apiListTokens(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "read:tokens")
	if !ok {
		return
	}
	toks, err := h.store.Tokens(r.Context(), u.ID, store.KindAPI, store.KindOAuth)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := []map[string]any{}
	for _, t := range toks {
		out = append(out, h.tokenModel(u, t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_tokens": out})
}

func (h *Hub) apiCreateToken(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "tokens")
	if !ok {
		return
	}
	var body struct {
		ExpiresIn *int64   `json:"expires_in"`
		Note      string   `json:"note"`
		Scopes    []string `json:"scopes"`
		Roles     []string `json:"roles"`
	}
	if err := h.decodeJSON(w, r, &body); err != nil {
		writeErr(w, err)
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
			apiError(w, http.StatusBadRequest, "unknown role %q (known: user, admin, token)", role)
			return
		}
	}
	if len(req) == 0 {
		req = []string{"inherit"}
	}
	owner := scopes.ForUser(u.Name, u.Admin)
	for _, s := range req {
		if !scopes.Known(s) {
			apiError(w, http.StatusBadRequest, "unknown scope %q", s)
			return
		}
	}
	// A token may not hold more than its owner, nor more than whoever asks for it.
	want := scopes.Expand(req, u.Name, owner)
	for s := range want {
		if !scopes.Intersect(scopes.Set{s: true}, owner)[s] || !scopes.Intersect(scopes.Set{s: true}, c.scopes)[s] {
			apiError(w, http.StatusForbidden, "not allowed to create a token with scope %s", s)
			return
		}
	}
	t := store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: req, Note: body.Note}
	if body.ExpiresIn != nil {
		if *body.ExpiresIn <= 0 {
			apiError(w, http.StatusBadRequest, "expires_in must be a positive number of seconds, or null")
			return
		}
		t.ExpiresAt = time.Now().Add(time.Duration(*body.ExpiresIn) * time.Second)
	}
	if t.Note == "" {
		t.Note = "Requested via API by " + c.user.Name
	}
	t, secret, err := h.store.CreateToken(r.Context(), t)
	if err != nil {
		writeErr(w, err)
		return
	}
	h.log.Info("token created", "user", u.Name, "token_id", t.APIID(), "by", c.user.Name)
	m := h.tokenModel(u, t)
	m["token"] = secret
	writeJSON(w, http.StatusCreated, m)
}

func (h *Hub) apiGetToken(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "read:tokens")
	if !ok {
		return
	}
	id, ok := store.ParseAPIID(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "no such token %q", r.PathValue("id"))
		return
	}
	t, err := h.store.TokenByID(r.Context(), u.ID, id)
	if err != nil || t.Kind == store.KindServer {
		apiError(w, http.StatusNotFound, "no such token %q", r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, h.tokenModel(u, t))
}

func (h *Hub) apiDeleteToken(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := h.targetUser(w, r, c, "tokens")
	if !ok {
		return
	}
	id, ok := store.ParseAPIID(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "no such token %q", r.PathValue("id"))
		return
	}
	if t, err := h.store.TokenByID(r.Context(), u.ID, id); err != nil || t.Kind == store.KindServer {
		apiError(w, http.StatusNotFound, "no such token %q", r.PathValue("id"))
		return
	}
	if err := h.store.DeleteToken(r.Context(), u.ID, id); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
