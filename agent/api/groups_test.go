package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

func groupOf(t *testing.T, r hubtest.Reply) (users []string, props map[string]any) {
	t.Helper()
	var m struct {
		Kind       string         `json:"kind"`
		Users      []string       `json:"users"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(r.Body, &m); err != nil || m.Kind != "group" {
		t.Fatalf("not a group model (%d): %s", r.Status, r.Body)
	}
	return m.Users, m.Properties
}

func TestGroupsCRUDAndMembership(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	th.User("alice", false)
	th.User("bob", false)

	r := th.Do("POST", "/hub/api/groups/staff", admin, `{"users": ["alice"], "properties": {"course": "x"}}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /groups/staff = %d %s", r.Status, r.Body)
	}
	if users, props := groupOf(t, r); !reflect.DeepEqual(users, []string{"alice"}) || props["course"] != "x" {
		t.Errorf("created staff = %s", r.Body)
	}
	if r := th.Do("POST", "/hub/api/groups/staff", admin, ""); r.Status != http.StatusConflict {
		t.Errorf("creating staff again = %d, want 409", r.Status)
	}
	if r := th.Do("POST", "/hub/api/groups", admin, `{"groups": ["a", "b"], "users": ["nobody"]}`); r.Status != http.StatusBadRequest {
		t.Errorf("a group with an unknown user = %d, want 400", r.Status)
	}
	if r := th.Do("POST", "/hub/api/groups", admin, `{"groups": ["empty", "staff"]}`); r.Status != http.StatusConflict {
		t.Errorf("POST /groups with one taken = %d, want 409", r.Status)
	}
	if r := th.Do("GET", "/hub/api/groups/empty", admin, ""); r.Status != http.StatusNotFound {
		t.Errorf("a refused POST /groups created empty anyway: %d", r.Status)
	}
	if r := th.Do("POST", "/hub/api/groups", admin, `{"groups": ["empty"]}`); r.Status != http.StatusCreated {
		t.Errorf("POST /groups = %d %s", r.Status, r.Body)
	}

	r = th.Do("POST", "/hub/api/groups/staff/users", admin, `{"users": ["bob"]}`)
	if users, _ := groupOf(t, r); !reflect.DeepEqual(users, []string{"alice", "bob"}) {
		t.Errorf("after adding bob: %s", r.Body)
	}
	// Membership is one thing: the user model shows it too.
	if g := th.Do("GET", "/hub/api/users/bob", admin, "").JSON(t)["groups"]; !reflect.DeepEqual(g, []any{"staff"}) {
		t.Errorf("bob's groups = %v", g)
	}
	r = th.Do("DELETE", "/hub/api/groups/staff/users", admin, `{"users": ["alice"]}`)
	if users, _ := groupOf(t, r); !reflect.DeepEqual(users, []string{"bob"}) {
		t.Errorf("after removing alice: %s", r.Body)
	}
	if r := th.Do("POST", "/hub/api/groups/staff/users", admin, `{}`); r.Status != http.StatusBadRequest {
		t.Errorf("no users = %d, want 400", r.Status)
	}
	if r := th.Do("POST", "/hub/api/groups/staff/users", admin, `{"users": ["bob"], "color": 1}`); r.Status != http.StatusBadRequest {
		t.Errorf("an unknown key = %d, want 400", r.Status)
	}

	r = th.Do("PUT", "/hub/api/groups/staff/properties", admin, `{"quota": 5}`)
	if _, props := groupOf(t, r); !reflect.DeepEqual(props, map[string]any{"quota": 5.0}) {
		t.Errorf("after PUT properties: %s", r.Body)
	}
	if r := th.Do("PUT", "/hub/api/groups/staff/properties", admin, `[1]`); r.Status != http.StatusBadRequest {
		t.Errorf("properties that are not an object = %d, want 400", r.Status)
	}

	var list []map[string]any
	json.Unmarshal(th.Do("GET", "/hub/api/groups", admin, "").Body, &list)
	if len(list) != 2 || list[0]["name"] != "staff" || list[1]["name"] != "empty" {
		t.Errorf("GET /groups = %v", list)
	}
	page := th.Do("GET", "/hub/api/groups?limit=1", admin, "", "Accept", "application/jupyterhub-pagination+json").JSON(t)
	if p := page["_pagination"].(map[string]any); p["total"] != 2.0 || p["next"] == nil {
		t.Errorf("paginated groups = %v", page)
	}

	if r := th.Do("DELETE", "/hub/api/groups/staff", admin, ""); r.Status != http.StatusNoContent {
		t.Errorf("DELETE /groups/staff = %d", r.Status)
	}
	if g := th.Do("GET", "/hub/api/users/bob", admin, "").JSON(t)["groups"]; !reflect.DeepEqual(g, []any{}) {
		t.Errorf("bob is still in %v after staff was deleted", g)
	}
	if r := th.Do("DELETE", "/hub/api/groups/staff", admin, ""); r.Status != http.StatusNotFound {
		t.Errorf("deleting it again = %d, want 404", r.Status)
	}
}

// A user's token reaches no groups at all (403); a token filtered to one group sees that group
// and gets 404 for the others, existing or not, as for users.
func TestGroupScopesAndFilters(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	alice := th.User("alice", false)
	for _, g := range []string{"staff", "students"} {
		th.Do("POST", "/hub/api/groups/"+g, admin, `{"users": ["alice"]}`)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/hub/api/groups", ""}, {"GET", "/hub/api/groups/staff", ""}, {"POST", "/hub/api/groups/new", ""},
		{"DELETE", "/hub/api/groups/staff", ""}, {"POST", "/hub/api/groups/staff/users", `{"users": []}`},
	} {
		if r := th.Do(c.method, c.path, alice, c.body); r.Status != http.StatusForbidden {
			t.Errorf("alice: %s %s = %d, want 403", c.method, c.path, r.Status)
		}
	}

	r := th.Do("POST", "/hub/api/users/admin/tokens", admin, `{"scopes": ["list:groups!group=staff", "read:groups!group=staff", "groups!group=staff"]}`)
	filtered := r.JSON(t)["token"].(string)
	var list []map[string]any
	json.Unmarshal(th.Do("GET", "/hub/api/groups", filtered, "").Body, &list)
	if len(list) != 1 || list[0]["name"] != "staff" {
		t.Errorf("the filtered token lists %v, want staff alone", list)
	}
	if r := th.Do("GET", "/hub/api/groups/staff", filtered, ""); r.Status != http.StatusOK {
		t.Errorf("filtered GET staff = %d", r.Status)
	}
	for _, g := range []string{"students", "nosuch"} {
		if r := th.Do("GET", "/hub/api/groups/"+g, filtered, ""); r.Status != http.StatusNotFound {
			t.Errorf("filtered GET %s = %d, want 404", g, r.Status)
		}
	}
	if r := th.Do("PUT", "/hub/api/groups/students/properties", filtered, `{}`); r.Status != http.StatusNotFound {
		t.Errorf("filtered PUT students = %d, want 404", r.Status)
	}
	if r := th.Do("DELETE", "/hub/api/groups/staff", filtered, ""); r.Status != http.StatusForbidden {
		t.Errorf("filtered token without delete:groups = %d, want 403", r.Status)
	}
	// The !group= filter on users reads the same membership.
	r = th.Do("POST", "/hub/api/users/admin/tokens", admin, `{"scopes": ["read:users!group=students"]}`)
	byGroup := r.JSON(t)["token"].(string)
	if r := th.Do("GET", "/hub/api/users/alice", byGroup, ""); r.Status != http.StatusOK {
		t.Errorf("read:users!group=students on alice = %d", r.Status)
	}
	th.Do("DELETE", "/hub/api/groups/students/users", admin, `{"users": ["alice"]}`)
	if r := th.Do("GET", "/hub/api/users/alice", byGroup, ""); r.Status != http.StatusNotFound {
		t.Errorf("read:users!group=students on alice after she left = %d, want 404", r.Status)
	}
}

// With auth.manage_groups (the default) a login sets the user's groups to the authenticator's;
// without it, logins leave the groups the API gave alone.
func TestManageGroups(t *testing.T) {
	for _, manage := range []bool{true, false} {
		th := hubtest.New(t, func(c *config.Config) { c.Auth.ManageGroups = manage })
		admin := th.User("admin", true)
		th.User("alice", false)
		th.Do("POST", "/hub/api/groups/api-made", admin, `{"users": ["alice"]}`)
		u, err := th.Gate().RecordLogin(context.Background(), auth.Identity{Name: "alice", Groups: []string{"unix-staff"}}, false, false)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"unix-staff"}
		if !manage {
			want = []string{"api-made"}
		}
		if !reflect.DeepEqual(u.Groups, want) {
			t.Errorf("manage_groups=%v: alice's groups after login = %v, want %v", manage, u.Groups, want)
		}
		_, err = th.Store().GetGroup(context.Background(), "unix-staff")
		if manage && err != nil {
			t.Errorf("a group a login brought in is not listed: %v", err)
		}
		if !manage && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("manage_groups=false: the login's group was recorded")
		}
	}
}
