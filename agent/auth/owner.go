package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// What a user holds, in one place: every token, cookie and check of "may this user do that"
// starts from OwnerScopes, so a role added here reaches the whole hub at once.

// OwnerScopes is everything a user holds: the default roles (user, and admin for admins), the
// [[role]]s that name the user or one of their groups, and the scopes of servers shared with them. A token's scopes are cut to these; a
// login cookie holds all of them. The error is the store's, for what is kept there.
func (g *Gate) OwnerScopes(ctx context.Context, u store.User) (scopes.Set, error) {
	// The roles' part is a pure function of the raw list built here from the user as they are
	// now, so its expansion may come from the cache: a user made admin, or moved to another
	// group, is another list.
	raw := slices.Clone(scopes.UserRole)
	if u.Admin {
		raw = append(raw, scopes.AdminRole...)
	}
	for _, r := range g.cfg.Roles {
		if assigned(r.Users, r.Groups, u) {
			raw = append(raw, r.Scopes...)
		}
	}
	set := g.expand(raw, u.Name)
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

// TokenScopes is what a token of owner's may do: the scopes it was made with, expanded, and cut to
// what its owner holds now (ownerScopes, from OwnerScopes).
func (g *Gate) TokenScopes(tok store.Token, owner string, ownerScopes scopes.Set) scopes.Set {
	if len(tok.Scopes) == 1 && tok.Scopes[0] == "inherit" {
		// Everything the owner holds, which the intersection would only copy.
		return ownerScopes
	}
	if slices.ContainsFunc(tok.Scopes, func(s string) bool {
		name, _, _ := strings.Cut(s, "!")
		return name == "inherit" || name == "all" // what they stand for is ownerScopes: not cached
	}) {
		return scopes.Intersect(scopes.Expand(tok.Scopes, owner, ownerScopes), ownerScopes)
	}
	return scopes.Intersect(g.expand(tok.Scopes, owner), ownerScopes)
}

// expand is scopes.Expand(raw, owner, nil), from the Gate's cache when it has one (a Gate
// made as a struct literal in a test has none).
func (g *Gate) expand(raw []string, owner string) scopes.Set {
	if g.expansions == nil {
		return scopes.Expand(raw, owner, nil)
	}
	return g.expansions.Expand(raw, owner)
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
