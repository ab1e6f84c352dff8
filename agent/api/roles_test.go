package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

func withRoles(c *config.Config) {
	c.Roles = []config.Role{
		{Name: "teachers", Scopes: []string{"list:users!group=students", "read:users!group=students"}, Users: []string{"alice"}},
		{Name: "graders", Scopes: []string{"list:groups", "read:groups"}, Groups: []string{"staff"}},
	}
}

// A [[role]] adds its scopes to what its users, and the members of its groups, hold: on their
// tokens and cookies alike, and only while they are assigned.
func TestConfiguredRolesGrantTheirScopes(t *testing.T) {
	th := hubtest.New(t, withRoles)
	admin := th.User("admin", true)
	alice := th.User("alice", false)
	bob := th.User("bob", false)
	th.User("carol", false)
	th.Do("POST", "/hub/api/groups/students", admin, `{"users": ["bob"]}`)
	th.Do("POST", "/hub/api/groups/staff", admin, `{"users": ["bob"]}`)

	if r := th.Do("GET", "/hub/api/users/bob", alice, ""); r.Status != http.StatusOK || r.JSON(t)["created"] == nil {
		t.Errorf("a teacher reading a student = %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/hub/api/users/carol", alice, ""); r.Status != http.StatusNotFound {
		t.Errorf("a teacher reading a non-student = %d, want 404", r.Status)
	}
	if r := th.Do("GET", "/hub/api/users", alice, ""); len(jsonList(t, r)) != 1 {
		t.Errorf("a teacher lists %s, want bob alone", r.Body)
	}
	if roles := th.Do("GET", "/hub/api/users/alice", admin, "").JSON(t)["roles"]; !reflect.DeepEqual(roles, []any{"user", "teachers"}) {
		t.Errorf("alice's roles = %v", roles)
	}
	if roles := th.Do("GET", "/hub/api/groups/staff", admin, "").JSON(t)["roles"]; !reflect.DeepEqual(roles, []any{"graders"}) {
		t.Errorf("staff's roles = %v", roles)
	}
	// Through the group: bob may list groups while he is in staff.
	if r := th.Do("GET", "/hub/api/groups", bob, ""); r.Status != http.StatusOK {
		t.Errorf("a grader listing groups = %d %s", r.Status, r.Body)
	}
	cookie := th.Login("bob")
	if r := th.Do("GET", "/hub/api/groups", "", "", "Cookie", cookie.Name+"="+cookie.Value); r.Status != http.StatusOK {
		t.Errorf("a grader's cookie listing groups = %d", r.Status)
	}
	th.Do("DELETE", "/hub/api/groups/staff/users", admin, `{"users": ["bob"]}`)
	if r := th.Do("GET", "/hub/api/groups", bob, ""); r.Status != http.StatusForbidden {
		t.Errorf("bob out of staff listing groups = %d, want 403", r.Status)
	}
	// A token may be asked for with a configured role, within what its owner holds.
	r := th.Do("POST", "/hub/api/users/alice/tokens", alice, `{"roles": ["teachers"]}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("a token with the teachers role = %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/hub/api/users/bob", r.JSON(t)["token"].(string), ""); r.Status != http.StatusOK {
		t.Errorf("the teachers token reading a student = %d", r.Status)
	}
	if r := th.Do("POST", "/hub/api/users/carol/tokens", admin, `{"roles": ["teachers"]}`); r.Status != http.StatusForbidden {
		t.Errorf("a teachers token for carol, who is no teacher = %d, want 403", r.Status)
	}
}

func jsonList(t *testing.T, r hubtest.Reply) []any {
	t.Helper()
	var l []any
	if err := json.Unmarshal(r.Body, &l); err != nil {
		t.Fatalf("not a JSON list (%d): %s", r.Status, r.Body)
	}
	return l
}
