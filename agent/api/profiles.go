package api

import (
	"context"
	"encoding/json"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// chooseProfile resolves the [[profile]] a start of u's server (name: "" for the default one)
// asks for in its user_options (agent/profiles): the options to start with, or the 400/403 that
// refuses them. A start that names no profile gets the one the server last started with.
func (a *API) chooseProfile(ctx context.Context, u store.User, name string, requested json.RawMessage) (json.RawMessage, error) {
	if !a.profiles.Configured() {
		return requested, nil
	}
	var previous json.RawMessage
	// FindServer, not Server: a named server's record is made by the start itself, which may
	// still refuse it (named_server_limit_per_user).
	if sv, err := a.store.FindServer(ctx, u.ID, name); err == nil {
		previous = sv.UserOptions
	}
	return a.profiles.Choose(u, requested, previous)
}
