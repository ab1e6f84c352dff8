package api_test

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

const graderToken = "grader-token-0123456789abcdef0123456789"

func withServices(t *testing.T) func(*config.Config) {
	dir := t.TempDir()
	path := filepath.Join(dir, "grader-token")
	if err := os.WriteFile(path, []byte(graderToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	no := false
	return func(c *config.Config) {
		withRoles(c)
		c.Services = []config.Service{
			{Name: "grader", APITokenFile: path, Roles: []string{"teachers"}, URL: "http://127.0.0.1:10101", Info: map[string]any{"k": "v"}},
			{Name: "hidden", Display: &no},
		}
	}
}

// A service's token calls the API as the service, with its roles' scopes and nothing of any user.
func TestServiceTokensActAsTheService(t *testing.T) {
	th := hubtest.New(t, withServices(t))
	admin := th.User("admin", true)
	th.User("bob", false)
	th.User("carol", false)
	th.Do("POST", "/hub/api/groups/students", admin, `{"users": ["bob"]}`)

	me := th.Do("GET", "/hub/api/user", graderToken, "")
	m := me.JSON(t)
	if me.Status != http.StatusOK || m["kind"] != "service" || m["name"] != "grader" || m["admin"] != false || !reflect.DeepEqual(m["roles"], []any{"teachers"}) {
		t.Errorf("GET /user with the service's token = %d %s", me.Status, me.Body)
	}
	if r := th.Do("GET", "/hub/api/users/bob", graderToken, ""); r.Status != http.StatusOK {
		t.Errorf("the grader reading a student = %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/hub/api/users/carol", graderToken, ""); r.Status != http.StatusNotFound {
		t.Errorf("the grader reading a non-student = %d, want 404", r.Status)
	}
	if r := th.Do("POST", "/hub/api/users/carol", graderToken, ""); r.Status != http.StatusForbidden {
		t.Errorf("the grader creating a user = %d, want 403", r.Status)
	}
	if r := th.Do("GET", "/hub/api/services", graderToken, ""); r.Status != http.StatusForbidden {
		t.Errorf("the grader listing services = %d, want 403", r.Status)
	}
}

func TestServicesAPI(t *testing.T) {
	th := hubtest.New(t, withServices(t))
	admin := th.User("admin", true)
	alice := th.User("alice", false)
	list := th.Do("GET", "/hub/api/services", admin, "").JSON(t)
	grader, _ := list["grader"].(map[string]any)
	if len(list) != 2 || grader["url"] != "http://127.0.0.1:10101" || grader["prefix"] != "/services/grader/" || grader["display"] != true {
		t.Errorf("GET /services = %v", list)
	}
	if hidden := list["hidden"].(map[string]any); hidden["display"] != false || hidden["prefix"] != "" {
		t.Errorf("hidden = %v", hidden)
	}
	if r := th.Do("GET", "/hub/api/services/grader", admin, ""); r.Status != http.StatusOK || r.JSON(t)["info"].(map[string]any)["k"] != "v" {
		t.Errorf("GET /services/grader = %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/hub/api/services/nosuch", admin, ""); r.Status != http.StatusNotFound {
		t.Errorf("GET /services/nosuch = %d, want 404", r.Status)
	}
	if r := th.Do("GET", "/hub/api/services/grader", alice, ""); r.Status != http.StatusForbidden {
		t.Errorf("a user reading a service = %d, want 403", r.Status)
	}
	r := th.Do("POST", "/hub/api/users/admin/tokens", admin, `{"scopes": ["list:services!service=hidden", "read:services!service=hidden"]}`)
	filtered := r.JSON(t)["token"].(string)
	if l := th.Do("GET", "/hub/api/services", filtered, "").JSON(t); len(l) != 1 || l["hidden"] == nil {
		t.Errorf("a token for hidden lists %v", l)
	}
	if r := th.Do("GET", "/hub/api/services/grader", filtered, ""); r.Status != http.StatusNotFound {
		t.Errorf("a token for hidden reading grader = %d, want 404", r.Status)
	}
}
