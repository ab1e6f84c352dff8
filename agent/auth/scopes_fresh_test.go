package auth_test

import (
	"context"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Expansions of scope lists are cached, but what a user holds is not: the request after an
// admin flag or a group (and with it a role) changes sees the new scopes, through an inheriting
// token and through one made with explicit scopes alike.
func TestScopesFollowAdminFlagAndGroupsOnTheNextRequest(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) {
		c.Roles = append(c.Roles, config.Role{Name: "lister", Scopes: []string{"list:users"}, Groups: []string{"staff"}})
	})
	root := th.User("root", true)
	inherit := th.User("bob", false)
	ctx := context.Background()
	bob, err := th.Store().GetUser(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	_, explicit, err := th.Store().CreateToken(ctx, store.Token{UserID: bob.ID, Kind: store.KindAPI, Scopes: []string{"list:users", "admin:users"}})
	if err != nil {
		t.Fatal(err)
	}
	lists := func(step string, want bool) {
		t.Helper()
		for name, tok := range map[string]string{"inheriting": inherit, "explicit": explicit} {
			// Twice: the second answer may come from the cache, and must be the same.
			for range 2 {
				r := th.Do("GET", "/hub/api/users", tok, "")
				if got := r.Status == 200; got != want {
					t.Fatalf("%s: bob's %s token lists users: %v (%d), want %v", step, name, got, r.Status, want)
				}
			}
		}
	}
	lists("at first", false)

	if r := th.Do("PATCH", "/hub/api/users/bob", root, `{"admin": true}`); r.Status != 200 {
		t.Fatalf("make bob admin = %d %s", r.Status, r.Body)
	}
	lists("made admin", true)
	if r := th.Do("PATCH", "/hub/api/users/bob", root, `{"admin": false}`); r.Status != 200 {
		t.Fatalf("take admin from bob = %d %s", r.Status, r.Body)
	}
	lists("admin taken away", false)

	if r := th.Do("POST", "/hub/api/groups/staff", root, ""); r.Status != 201 {
		t.Fatalf("create group = %d %s", r.Status, r.Body)
	}
	if r := th.Do("POST", "/hub/api/groups/staff/users", root, `{"users": ["bob"]}`); r.Status != 200 {
		t.Fatalf("add bob to staff = %d %s", r.Status, r.Body)
	}
	lists("in staff, whose role lists users", true)
	if r := th.Do("DELETE", "/hub/api/groups/staff/users", root, `{"users": ["bob"]}`); r.Status != 200 {
		t.Fatalf("remove bob from staff = %d %s", r.Status, r.Body)
	}
	lists("out of staff", false)
}
