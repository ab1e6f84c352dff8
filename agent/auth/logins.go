package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

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

// RecordLogin creates or updates the user: their groups follow the authenticator's on every
// login. With revokeAdmin, admin also follows the configuration both ways (an identity provider's
// groups are the truth); otherwise login only ever grants it.
func (g *Gate) RecordLogin(ctx context.Context, id Identity, admin, revokeAdmin bool) (store.User, error) {
	u, err := g.store.GetUser(ctx, id.Name)
	if errors.Is(err, store.ErrNotFound) {
		u, err = g.store.CreateUser(ctx, id.Name, admin)
	}
	if err != nil {
		return u, err
	}
	groups := id.Groups
	patch := store.UserPatch{Groups: &groups}
	if admin || revokeAdmin {
		patch.Admin = &admin
	}
	if u.Admin && !admin && revokeAdmin {
		g.log.Info("admin rights removed: no longer in auth.admin_users or auth.admin_groups", "user", u.Name)
	}
	return g.store.UpdateUser(ctx, u.Name, patch)
}

// KeepRemoteLogin stores an identity provider's tokens for the user, sealed.
func (g *Gate) KeepRemoteLogin(ctx context.Context, u store.User, state []byte) error {
	return g.store.SetAuthState(ctx, u.ID, g.sealer.seal(state))
}

// FreshLogin makes sure a user who logged in through the provider still may: their tokens are
// refreshed when about to expire, so a server never starts with a dead token. ErrLoginExpired
// means they must log in again.
func (g *Gate) FreshLogin(ctx context.Context, u store.User) error {
	if g.idp == nil {
		return nil
	}
	sealed, err := g.store.AuthState(ctx, u.ID)
	if err != nil || sealed == nil {
		return err // users made through the API have no provider login to refresh
	}
	state, err := g.sealer.open(sealed)
	if err != nil {
		return err
	}
	var meta struct {
		Expiry time.Time `json:"expiry"`
	}
	json.Unmarshal(state, &meta)
	if meta.Expiry.IsZero() || time.Until(meta.Expiry) > g.cfg.Auth.OIDC.RefreshBefore.D() {
		return nil
	}
	login, err := g.idp.Refresh(ctx, state)
	if errors.Is(err, ErrLoginExpired) {
		g.log.Info("refresh refused by the identity provider; the user must log in again", "user", u.Name)
		g.store.SetAuthState(ctx, u.ID, nil)
		g.store.DeleteUserSessions(ctx, u.ID)
		return err
	}
	if err != nil {
		return fmt.Errorf("refresh login of %s at the identity provider: %w", u.Name, err)
	}
	g.log.Info("refreshed login at the identity provider", "user", u.Name, "expiry", login.Expiry)
	return g.KeepRemoteLogin(ctx, u, login.State)
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
