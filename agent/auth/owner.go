package auth

import (
	"context"
	"fmt"
	"slices"

	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// What a user holds, in one place: every token, cookie and check of "may this user do that"
// starts from OwnerScopes, so a role added here reaches the whole hub at once.

// OwnerScopes is everything a user holds: the default roles (user, and admin for admins), the
// [[role]]s that name the user or one of their groups, and the scopes of servers shared with them. A token's scopes are cut to these; a
// login cookie holds all of them. The error is the store's, for what is kept there.
func (g *Gate) OwnerScopes(ctx context.Context, u store.User) (scopes.Set, error) {
	set := scopes.ForUser(u.Name, u.Admin)
	var raw []string
	for _, r := range g.cfg.Roles {
		if assigned(r.Users, r.Groups, u) {
			raw = append(raw, r.Scopes...)
		}
	}
	for s := range scopes.Expand(raw, u.Name, nil) {
		set[s] = true
	}
	// Servers others shared with the user (or one of their groups), JupyterHub 5's sharing.
	if g.store != nil && u.ID != 0 {
		shares, err := g.store.SharedWith(ctx, u)
		if err != nil {
			return set, fmt.Errorf("servers shared with %s: %w", u.Name, err)
		}
		for _, sh := range shares {
			for _, s := range sh.Scopes {
				set[s] = true
			}
		}
	}
	return set, nil
}

func assigned(users, groups []string, u store.User) bool {
	if slices.Contains(users, u.Name) {
		return true
	}
	for _, gr := range u.Groups {
		if slices.Contains(groups, gr) {
			return true
		}
	}
	return false
}

// UserRoles names the roles assigned to a user directly, as JupyterHub's user model shows them:
// the default roles, then the configured ones naming the user (roles a user holds through a group
// are in the group's model).
func (g *Gate) UserRoles(u store.User) []string {
	roles := []string{"user"}
	if u.Admin {
		roles = append(roles, "admin")
	}
	for _, r := range g.cfg.Roles {
		if slices.Contains(r.Users, u.Name) {
			roles = append(roles, r.Name)
		}
	}
	return roles
}

// GroupRoles names the configured roles assigned to a group.
func (g *Gate) GroupRoles(group string) []string {
	roles := []string{}
	for _, r := range g.cfg.Roles {
		if slices.Contains(r.Groups, group) {
			roles = append(roles, r.Name)
		}
	}
	return roles
}

// RoleScopes are the scopes of a configured role, for tokens requested with {"roles": [name]}.
func (g *Gate) RoleScopes(name string) ([]string, bool) {
	for _, r := range g.cfg.Roles {
		if r.Name == name {
			return r.Scopes, true
		}
	}
	return nil, false
}
