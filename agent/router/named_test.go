package router_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// says answers with which server it is and the path it was sent.
func says(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s %s", name, r.URL.Path) })
}

func TestNamedServersAreRoutedBesideTheDefaultOne(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.AllowNamedServers = true })
	th.Serve("alice", says("default"))
	th.ServeNamed("alice", "gpu", says("gpu"))
	th.ServeNamed("alice", "cpu", says("cpu"))
	for path, want := range map[string]string{
		"/user/alice/gpu/api":         "gpu /user/alice/gpu/api",
		"/user/alice/cpu/api/kernels": "cpu /user/alice/cpu/api/kernels",
		"/user/alice/api":             "default /user/alice/api",
		"/user/alice/gpux/api":        "default /user/alice/gpux/api", // no server gpux: the default server's path
		"/user/alice/lab/tree/gpu/":   "default /user/alice/lab/tree/gpu/",
	} {
		if r := th.Do("GET", path, "", ""); r.Status != 200 || string(r.Body) != want {
			t.Errorf("GET %s = %d %q, want %q", path, r.Status, r.Body, want)
		}
	}
	if r := th.Do("GET", "/user/alice/gpu?x=1", "", ""); r.Status != http.StatusFound || r.Header.Get("Location") != "/user/alice/gpu/?x=1" {
		t.Errorf("GET /user/alice/gpu = %d to %q, want a redirect to the server's prefix", r.Status, r.Header.Get("Location"))
	}
	th.Do("DELETE", "/hub/api/users/alice/servers/gpu", th.Token("alice"), "")
	if _, ok := th.Servers().Route("alice", "gpu"); ok {
		t.Fatal("gpu still routed after its stop")
	}
	// Stopped, its paths fall to the default server, as JupyterHub's proxy's longest prefix does.
	if r := th.Do("GET", "/user/alice/gpu/api", "", ""); string(r.Body) != "default /user/alice/gpu/api" {
		t.Errorf("after gpu stopped, /user/alice/gpu/api = %d %q", r.Status, r.Body)
	}
	if r := th.Do("GET", "/user/alice/cpu/api", "", ""); string(r.Body) != "cpu /user/alice/cpu/api" {
		t.Errorf("cpu after gpu stopped = %d %q", r.Status, r.Body)
	}
}

func TestAStoppedNamedServersPathLeadsToItsOwnPage(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.AllowNamedServers = true })
	th.ServeNamed("alice", "gpu", says("gpu"))
	th.Do("DELETE", "/hub/api/users/alice/servers/gpu", th.Token("alice"), "")
	r := th.Do("GET", "/user/alice/gpu/lab", "", "")
	if r.Status != http.StatusFound || r.Header.Get("Location") != "/hub/user/alice/gpu/lab" {
		t.Fatalf("GET /user/alice/gpu/lab with nothing running = %d to %q", r.Status, r.Header.Get("Location"))
	}
	cookie := th.Login("alice")
	page := th.Do("GET", "/hub/user/alice/gpu/lab", "", "", "Cookie", cookie.Name+"="+cookie.Value, "Sec-Fetch-Mode", "navigate")
	if page.Status != http.StatusFailedDependency || !contains(page.Body, `action="/hub/spawn/alice/gpu"`) {
		t.Errorf("/hub/user/alice/gpu/lab = %d, want the not-running page offering to start gpu:\n%s", page.Status, page.Body)
	}
}

func TestNamedServersShareTheirUsersHost(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) {
		c.Hub.AllowNamedServers = true
		c.Hub.SubdomainHost = "http://hub.test"
	})
	th.ServeNamed("alice", "gpu", says("gpu"))
	if r := th.Do("GET", "/user/alice/gpu/api", "", "", "Host", "hub.test"); r.Status != http.StatusFound || r.Header.Get("Location") != "http://alice.hub.test/user/alice/gpu/api" {
		t.Errorf("on the hub's host = %d to %q, want alice's host", r.Status, r.Header.Get("Location"))
	}
	if r := th.Do("GET", "/user/alice/gpu/api", "", "", "Host", "alice.hub.test"); r.Status != 200 || string(r.Body) != "gpu /user/alice/gpu/api" {
		t.Errorf("on alice's host = %d %q", r.Status, r.Body)
	}
	if r := th.Do("GET", "/user/alice/gpu/api", "", "", "Host", "bob.hub.test"); r.Status != http.StatusFound {
		t.Errorf("alice's named server on bob's host = %d %q, want a redirect away", r.Status, r.Body)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
