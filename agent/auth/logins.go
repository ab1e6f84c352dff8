package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Admission applies auth.allowed_* and auth.admin_*. With no allow list, every account the
// authenticator accepts may log in; admins are always allowed. With an identity provider, the
// configured groups lose a leading "/" as the provider's do (config.OIDCGroup).
func (g *Gate) Admission(id Identity) (admin, allowed bool) {
	a := g.cfg.Auth
	inAny := func(list []string) bool {
		for _, gr := range id.Groups {
			if slices.Contains(list, gr) {
				return true
			}
		}
		return false
	}
	admin = slices.Contains(a.AdminUsers, id.Name) || inAny(g.adminGroups)
	open := len(a.AllowedUsers) == 0 && len(g.allowedGroups) == 0
	allowed = admin || open || slices.Contains(a.AllowedUsers, id.Name) || inAny(g.allowedGroups)
	return admin, allowed
}

// RecordLogin creates or updates the user: with auth.manage_groups their groups follow the
// authenticator's on every login (otherwise only the API changes them). With revokeAdmin, admin
// also follows the configuration both ways (an identity provider's groups are the truth);
// otherwise login only ever grants it.
func (g *Gate) RecordLogin(ctx context.Context, id Identity, admin, revokeAdmin bool) (store.User, error) {
	u, err := g.store.GetUser(ctx, id.Name)
	if errors.Is(err, store.ErrNotFound) {
		u, err = g.store.CreateUser(ctx, id.Name, admin)
	}
	if err != nil {
		return u, err
	}
	return g.applyIdentity(ctx, u, id, admin, revokeAdmin)
}

// applyIdentity is RecordLogin's update of an existing user, which a refreshed login makes too.
// Groups follow the authenticator only with auth.manage_groups.
func (g *Gate) applyIdentity(ctx context.Context, u store.User, id Identity, admin, revokeAdmin bool) (store.User, error) {
	var patch store.UserPatch
	if g.cfg.Auth.ManageGroups {
		groups := id.Groups
		if groups == nil {
			groups = []string{}
		}
		patch.Groups = &groups
	}
	if admin || revokeAdmin {
		patch.Admin = &admin
	}
	switch {
	case u.Admin && !admin && revokeAdmin:
		g.log.Info("admin rights removed: no longer in auth.admin_users or auth.admin_groups", "user", u.Name)
	case !u.Admin && admin:
		g.log.Info("admin rights granted: in auth.admin_users or auth.admin_groups", "user", u.Name)
	}
	u, err := g.store.UpdateUser(ctx, u.Name, patch)
	if err != nil {
		return u, fmt.Errorf("record the groups and admin rights of %s: %w", id.Name, err)
	}
	return u, nil
}

// KeepRemoteLogin stores an identity provider's tokens for the user, sealed. A login's tokens
// are as fresh as a refresh's: requests need not refresh them for auth.oidc.refresh_age.
func (g *Gate) KeepRemoteLogin(ctx context.Context, u store.User, state []byte) error {
	if err := g.store.SetAuthState(ctx, u.ID, g.sealer.seal(state)); err != nil {
		return fmt.Errorf("keep the provider login of %s: %w", u.Name, err)
	}
	g.refreshed(u)
	return nil
}

// AuthState is the user's provider tokens for callers with admin:auth_state, or nil.
func (g *Gate) AuthState(ctx context.Context, u store.User) any {
	sealed, err := g.store.AuthState(ctx, u.ID)
	if err != nil || sealed == nil {
		return nil
	}
	state, err := g.sealer.open(sealed)
	if err != nil {
		return nil
	}
	return json.RawMessage(state)
}

// AuthStates is AuthState for a page of users, read in one statement, by user id; users with
// none (or whose tokens no longer open) have no entry.
func (g *Gate) AuthStates(ctx context.Context, users []store.User) map[int64]any {
	out := map[int64]any{}
	if len(users) == 0 {
		return out
	}
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	sealed, err := g.store.AuthStates(ctx, ids)
	if err != nil {
		g.log.Warn("read auth state of a page of users; showing none", "users", len(users), "err", err)
		return out
	}
	for id, b := range sealed {
		if state, err := g.sealer.open(b); err == nil {
			out[id] = json.RawMessage(state)
		}
	}
	return out
}
