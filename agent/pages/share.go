package pages

import (
	"errors"
	"net/http"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// acceptSharePage is /hub/accept-share?code=...: a share code's recipient sees what it gives and
// accepts it with a form (a link alone never changes anyone's access), then goes to the server.
func (h *Pages) acceptSharePage(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	secret := r.FormValue("code")
	code, err := h.store.LookupShareCode(r.Context(), secret)
	if errors.Is(err, store.ErrNotFound) {
		h.render.Error(w, r, http.StatusNotFound, "Invitation not valid", "This share code is unknown or has expired. Ask the server's owner for a new one.")
		return
	}
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	if code.Server.UserID == c.User.ID {
		http.Redirect(w, r, h.servers.FullURL(code.Server.UserName, code.Server.Name), http.StatusFound)
		return
	}
	if r.Method != http.MethodPost {
		h.render.Render(w, r, http.StatusOK, "accept_share.html", map[string]any{
			"Owner": code.Server.UserName, "Scopes": code.Scopes, "Code": secret, "Expires": until(code.ExpiresAt),
		}, c)
		return
	}
	if _, err := h.store.ExchangeShareCode(r.Context(), secret, c.User); err != nil {
		h.render.Error(w, r, http.StatusBadRequest, "Could not accept", err.Error())
		return
	}
	h.log.Info("share code accepted", "server", code.Server.UserName+"/"+code.Server.Name, "id", code.APIID(), "user", c.User.Name)
	http.Redirect(w, r, h.servers.FullURL(code.Server.UserName, code.Server.Name), http.StatusFound)
}
