package pages

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// tokenPage is /hub/token, where users list, create and revoke their own API tokens, as on
// JupyterHub's token page. A new token is shown once, in the answer to the form that made it.
func (h *Pages) tokenPage(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	data := map[string]any{}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		secret, msg := h.createToken(r, c)
		if msg != "" {
			data["Error"], status = msg, http.StatusBadRequest
		} else {
			data["New"] = secret
		}
	}
	toks, err := h.store.Tokens(r.Context(), c.User.ID, store.KindAPI, store.KindOAuth)
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	owner, err := h.gate.OwnerScopes(r.Context(), c.User)
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	var rows []map[string]any
	for _, t := range toks {
		rows = append(rows, map[string]any{
			"ID": t.APIID(), "Note": t.Note, "Client": t.OAuthClient,
			"Scopes":  strings.Join(scopes.Intersect(scopes.Expand(t.Scopes, c.User.Name, owner), owner).List(), " "),
			"Created": day(t.Created), "LastUsed": ago(t.LastActivity), "Expires": until(t.ExpiresAt),
		})
	}
	data["Tokens"] = rows
	h.render.Render(w, r, status, "token.html", data, c)
}

func (h *Pages) createToken(r *http.Request, c *auth.Caller) (secret, problem string) {
	req := strings.Fields(r.PostFormValue("scopes"))
	if len(req) == 0 {
		req = []string{"inherit"}
	}
	owner, err := h.gate.OwnerScopes(r.Context(), c.User)
	if err != nil {
		return "", "Could not read what you may do: " + err.Error()
	}
	if ok, _, msg := scopes.Grantable(req, c.User.Name, owner, owner); !ok {
		return "", "Cannot create that token: " + msg + "."
	}
	t := store.Token{UserID: c.User.ID, Kind: store.KindAPI, Scopes: req, Note: strings.TrimSpace(r.PostFormValue("note"))}
	if t.Note == "" {
		t.Note = "Requested via the token page"
	}
	secs, err := strconv.ParseInt(r.PostFormValue("expires_in"), 10, 64)
	if err != nil || secs < 0 || secs > 365*24*3600 {
		return "", "Pick when the token expires."
	}
	if secs > 0 {
		t.ExpiresAt = time.Now().Add(time.Duration(secs) * time.Second)
	}
	t, secret, err = h.store.CreateToken(r.Context(), t)
	if err != nil {
		return "", "Could not create the token: " + err.Error()
	}
	h.log.Info("token created", "user", c.User.Name, "token_id", t.APIID(), "by", "token page")
	return secret, ""
}

func (h *Pages) revokeToken(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if r.Method == http.MethodPost {
		if id, ok := store.ParseAPIID(r.PostFormValue("id")); ok {
			if t, err := h.store.TokenByID(r.Context(), c.User.ID, id); err == nil && t.Kind != store.KindServer {
				if err := h.store.DeleteToken(r.Context(), c.User.ID, id); err != nil {
					h.render.Error(w, r, http.StatusInternalServerError, "Could not revoke the token", err.Error())
					return
				}
				h.log.Info("token revoked", "user", c.User.Name, "token_id", t.APIID(), "by", "token page")
			}
		}
	}
	http.Redirect(w, r, h.prefix+"/hub/token", http.StatusSeeOther)
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02")
}

func until(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return "in " + time.Until(t).Round(time.Minute).String()
}
