package api_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// The user model shows only the fields the caller's scopes may read, and a field it may read
// but that has no value is there as null (JupyterHub 5.5.1's user model), not left out.
func TestUserModelFieldsFollowScopes(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("root-admin", true)
	th.User("alice", false)
	r := th.Do("POST", "/hub/api/users/root-admin/tokens", admin, `{"scopes":["read:users:name"]}`)
	namesOnly, _ := r.JSON(t)["token"].(string)

	fields := func(token string) map[string]json.RawMessage {
		t.Helper()
		r := th.Do("GET", "/hub/api/users/alice", token, "")
		var m map[string]json.RawMessage
		if r.Status != 200 || json.Unmarshal(r.Body, &m) != nil {
			t.Fatalf("GET alice = %d %s", r.Status, r.Body)
		}
		return m
	}
	if got := slices.Sorted(maps.Keys(fields(namesOnly))); !slices.Equal(got, []string{"admin", "kind", "name"}) {
		t.Errorf("read:users:name sees %v, want admin, kind, name", got)
	}
	m := fields(admin)
	for _, k := range []string{"server", "pending", "auth_state", "last_activity"} {
		if string(m[k]) != "null" {
			t.Errorf("admin sees %s = %q, want null", k, m[k])
		}
	}
	if string(m["servers"]) != "{}" {
		t.Errorf("admin sees servers = %s, want {}", m["servers"])
	}
}
