package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// A page of users costs the same few statements whatever its size: servers and auth state are
// read for the whole page, not once per user. Six in all: the token with its owner, what is
// shared with the owner, the count, the page, its servers, its auth state.
func TestUsersPageCostsTheSameStatementsWhateverItsSize(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.APIPageMaxLimit = 500 })
	admin := th.User("root-admin", true)
	ctx := context.Background()
	for i := range 250 {
		u, err := th.Store().CreateUser(ctx, fmt.Sprintf("user%03d", i), false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := th.Store().Server(ctx, u.ID, ""); err != nil {
			t.Fatal(err)
		}
		if err := th.Store().SetAuthState(ctx, u.ID, []byte("sealed")); err != nil {
			t.Fatal(err)
		}
	}
	cost := func(limit int) int64 {
		path := fmt.Sprintf("/hub/api/users?limit=%d&include_stopped_servers=1", limit)
		best := int64(-1)
		// The fewest of a few tries: the hub's own background work only ever adds statements.
		for range 3 {
			before := th.Store().Statements()
			if r := th.Do("GET", path, admin, ""); r.Status != 200 {
				t.Fatalf("GET %s = %d %s", path, r.Status, r.Body)
			}
			if n := th.Store().Statements() - before; best < 0 || n < best {
				best = n
			}
		}
		return best
	}
	small, big := cost(2), cost(200)
	if small != big {
		t.Errorf("a page of 2 users costs %d statements, a page of 200 costs %d: something is read per user", small, big)
	}
	if big > 6 {
		t.Errorf("a page of users costs %d statements, want at most 6", big)
	}
	t.Logf("a page of users costs %d statements", big)
}
