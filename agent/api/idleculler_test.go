package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// TestIdleCullerAPI walks one cycle of the stock jupyterhub-idle-culler (2.0,
// jupyterhub_idle_culler/__init__.py cull_idle) with --cull-users, as a [[service]] holding the
// scopes its README asks for, and pins what it reads at each step. The culler is not in Debian
// and PyPI is out of reach here, so this test stands in for running it.
func TestIdleCullerAPI(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "culler-token")
	const token = "idle-culler-token-0123456789abcdef0123"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	th := hubtest.New(t, func(c *config.Config) {
		c.Roles = []config.Role{{Name: "idle-culler", Scopes: []string{"list:users", "read:users:activity", "read:servers", "delete:servers", "admin:users"}}}
		c.Services = []config.Service{{Name: "idle-culler", APITokenFile: tokenFile, Roles: []string{"idle-culler"}}}
	})
	th.Serve("alice", http.NotFoundHandler())
	th.Serve("carol", http.NotFoundHandler())
	th.User("bob", false) // no server: only --cull-users looks at him

	// 1. GET / : a version of at least 1.3.0 turns the state filter on.
	var root struct{ Version string }
	if r := th.Do("GET", "/hub/api/", token, ""); r.Status != 200 || json.Unmarshal(r.Body, &root) != nil || !strings.HasPrefix(root.Version, "5.") {
		t.Fatalf("GET / = %d %s", r.Status, r.Body)
	}

	// 2. --cull-users: GET /users?state=inactive, paginated.
	inactive := culledPages(t, th, token, "/hub/api/users?state=inactive&limit=1")
	if len(inactive) != 1 || inactive[0]["name"] != "bob" {
		t.Errorf("state=inactive: %v, want bob", names(inactive))
	}

	// 3. GET /users?state=ready with the pagination Accept header, following next.url.
	ready := culledPages(t, th, token, "/hub/api/users?state=ready&limit=1")
	if got := names(ready); len(got) != 2 || got[0] != "alice" || got[1] != "carol" {
		t.Fatalf("state=ready: %v, want alice and carol on two pages", got)
	}
	// 4. Per server, what handle_server reads: pending (skip if set), ready (or url), started and
	// last_activity as timestamps dateutil parses (it assumes UTC when there is no zone).
	for _, u := range ready {
		for _, key := range []string{"name", "admin", "created", "last_activity", "pending", "servers"} {
			if _, ok := u[key]; !ok {
				t.Errorf("user %s has no %q", u["name"], key)
			}
		}
		sv, ok := u["servers"].(map[string]any)[""].(map[string]any)
		if !ok {
			t.Fatalf("user %s: servers has no default server: %v", u["name"], u["servers"])
		}
		if sv["pending"] != nil || sv["ready"] != true || sv["url"] == "" {
			t.Errorf("server of %s: pending %v ready %v url %v", u["name"], sv["pending"], sv["ready"], sv["url"])
		}
		for _, key := range []string{"started", "last_activity"} {
			if key == "last_activity" && sv[key] == nil {
				continue // before the first activity; the culler then counts from started
			}
			s, _ := sv[key].(string)
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				t.Errorf("server of %s: %s = %v, not an ISO 8601 time", u["name"], key, sv[key])
			}
		}
	}

	// 5. DELETE /users/{name}/server: 204 stopped, or 202 "slow to stop" (then not counted).
	r := th.Do("DELETE", "/hub/api/users/alice/server", token, "")
	if r.Status != http.StatusNoContent && r.Status != http.StatusAccepted {
		t.Fatalf("DELETE /users/alice/server = %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, ok := th.Servers().Route("alice", ""); ok && time.Now().Before(deadline); _, ok = th.Servers().Route("alice", "") {
		time.Sleep(20 * time.Millisecond)
	}
	if got := names(culledPages(t, th, token, "/hub/api/users?state=ready")); len(got) != 1 || got[0] != "carol" {
		t.Errorf("after culling alice, state=ready lists %v", got)
	}

	// 6. --cull-users: DELETE /users/{name} for a user whose servers are all stopped.
	if r := th.Do("DELETE", "/hub/api/users/bob", token, ""); r.Status != http.StatusNoContent {
		t.Errorf("DELETE /users/bob = %d %s", r.Status, r.Body)
	}
	if _, err := th.Store().GetUser(context.Background(), "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob is still there: %v", err)
	}
}

// culledPages fetches a user list as fetch_paginated does and returns every item.
func culledPages(t *testing.T, th *hubtest.Hub, token, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for pages := 0; path != ""; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		r := th.Do("GET", path, token, "", "Accept", "application/jupyterhub-pagination+json")
		var page struct {
			Items      []map[string]any `json:"items"`
			Pagination struct {
				Next *struct {
					URL string `json:"url"`
				} `json:"next"`
			} `json:"_pagination"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &page) != nil {
			t.Fatalf("GET %s = %d %s", path, r.Status, r.Body)
		}
		out = append(out, page.Items...)
		path = ""
		if page.Pagination.Next != nil {
			path = page.Pagination.Next.URL
		}
	}
	return out
}

func names(users []map[string]any) []string {
	var out []string
	for _, u := range users {
		out = append(out, u["name"].(string))
	}
	return out
}
