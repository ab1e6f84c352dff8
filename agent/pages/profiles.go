package pages

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// spawnForm adds the options form to the spawn page's data: the profiles u is offered
// (KubeSpawner's profile_list form: one radio button named "profile" per profile, its value the
// profile's name), with the one preselected that a start naming none would get, or the one a
// ?profile= link names (as KubeSpawner's options_from_query reads it). Without profiles, or
// with none u may use, there is no form.
func (h *Pages) spawnForm(r *http.Request, u store.User, sv store.Server, data map[string]any) map[string]any {
	offered := h.profiles.Offered(u)
	if len(offered) == 0 {
		return data
	}
	selected := h.profiles.Preselected(u, sv.UserOptions)
	if q := r.URL.Query().Get("profile"); q != "" {
		for _, p := range offered {
			if p.Name == q {
				selected = q
			}
		}
	}
	data["Profiles"], data["Selected"] = offered, selected
	return data
}

// chosenOptions are the user_options of a start from the spawn page's form: the profile it
// names, checked, or the server's last one (agent/profiles).
func (h *Pages) chosenOptions(r *http.Request, u store.User, sv store.Server) (json.RawMessage, error) {
	if !h.profiles.Configured() {
		return nil, nil
	}
	var requested json.RawMessage
	if name := r.FormValue("profile"); name != "" {
		requested, _ = json.Marshal(map[string]string{"profile": name})
	}
	return h.profiles.Choose(u, requested, sv.UserOptions)
}

// profileRefused shows why a chosen profile cannot be used, with the status the API answers.
func (h *Pages) profileRefused(w http.ResponseWriter, r *http.Request, err error) {
	var se *web.StatusError
	if errors.As(err, &se) {
		h.render.Error(w, r, se.Status, "Cannot start the server", se.Msg)
		return
	}
	h.render.Error(w, r, http.StatusInternalServerError, "Cannot start the server", err.Error())
}
