package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// The page limits are hub.api_page_default_limit and hub.api_page_max_limit, as JupyterHub's:
// a raised cap lets ?limit= through, a client without the pagination media type gets the cap,
// and one with it gets the default.
func TestPageLimitsFollowTheConfig(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) {
		c.Hub.APIPageDefaultLimit = 3
		c.Hub.APIPageMaxLimit = 7
	})
	admin := th.User("root-admin", true)
	names := make([]string, 9)
	for i := range names {
		names[i] = fmt.Sprintf("u%02d", i)
	}
	body, _ := json.Marshal(map[string]any{"usernames": names})
	if r := th.Do("POST", "/hub/api/users", admin, string(body)); r.Status != 201 {
		t.Fatalf("create users = %d %s", r.Status, r.Body)
	}
	const paged = "application/jupyterhub-pagination+json"
	count := func(path string, accept ...string) int {
		t.Helper()
		r := th.Do("GET", path, admin, "", accept...)
		if r.Status != 200 {
			t.Fatalf("GET %s = %d %s", path, r.Status, r.Body)
		}
		if len(accept) > 0 {
			return len(r.JSON(t)["items"].([]any))
		}
		var list []any
		if err := json.Unmarshal(r.Body, &list); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, r.Body)
		}
		return len(list)
	}
	for _, c := range []struct {
		path   string
		accept []string
		want   int
	}{
		{"/hub/api/users", nil, 7},
		{"/hub/api/users", []string{"Accept", paged}, 3},
		{"/hub/api/users?limit=5", []string{"Accept", paged}, 5},
		{"/hub/api/users?limit=1000", []string{"Accept", paged}, 7},
		{"/hub/api/users?limit=1000", nil, 7},
	} {
		if got := count(c.path, c.accept...); got != c.want {
			t.Errorf("GET %s (accept %q) = %d users, want %d", c.path, strings.Join(c.accept, " "), got, c.want)
		}
	}
}

// With the cap raised to 1000, ?limit=1000 is honoured rather than silently cut to 200.
func TestALargePageWhenTheCapAllowsIt(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.APIPageMaxLimit = 1000 })
	admin := th.User("root-admin", true)
	names := make([]string, 250)
	for i := range names {
		names[i] = fmt.Sprintf("user%03d", i)
	}
	body, _ := json.Marshal(map[string]any{"usernames": names})
	if r := th.Do("POST", "/hub/api/users", admin, string(body)); r.Status != 201 {
		t.Fatalf("create users = %d %s", r.Status, r.Body)
	}
	r := th.Do("GET", "/hub/api/users?limit=1000", admin, "", "Accept", "application/jupyterhub-pagination+json")
	if n := len(r.JSON(t)["items"].([]any)); n != 251 {
		t.Errorf("?limit=1000 listed %d users, want all 251", n)
	}
}
