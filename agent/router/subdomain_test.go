package router_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
)

// With hub.subdomain_host, each server has a host of its own, so a page bob serves runs on
// bob.hub.test, an origin that never gets the hub's cookie and cannot script the hub's pages.
func TestServersOnHostsOfTheirOwn(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.SubdomainHost = "https://hub.test" })
	var seen []string
	th.Serve("alice", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = append(seen, r.Host+r.URL.Path) }))
	th.User("bob", false)

	// On alice's host, her server answers.
	if r := th.Do("GET", "/user/alice/lab", "", "", "Host", "alice.hub.test"); r.Status != http.StatusOK || len(seen) != 1 || seen[0] != "alice.hub.test/user/alice/lab" {
		t.Fatalf("alice's host: %d, server saw %v", r.Status, seen)
	}
	// On the hub's host, /user/alice/ is sent to her host.
	if r := th.Do("GET", "/user/alice/lab?x=1", "", "", "Host", "hub.test"); r.Status != http.StatusFound || r.Header.Get("Location") != "https://alice.hub.test/user/alice/lab?x=1" {
		t.Errorf("hub host /user/alice/lab = %d → %s", r.Status, r.Header.Get("Location"))
	}
	// Bob's host serves only bob: alice's server and the hub's pages are not there.
	for _, p := range []string{"/user/alice/lab", "/hub/home", "/hub/api/user"} {
		r := th.Do("GET", p, "", "", "Host", "bob.hub.test")
		if r.Status != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "https://hub.test/") {
			t.Errorf("bob's host %s = %d → %s, want it sent to the hub's host", p, r.Status, r.Header.Get("Location"))
		}
	}
	if len(seen) != 1 {
		t.Errorf("alice's server was reached from another host: %v", seen)
	}

	// The server learns its own origin, and its OAuth callback is there.
	ctx := context.Background()
	u, _ := th.Store().GetUser(ctx, "bob")
	sv, _ := th.Store().Server(ctx, u.ID, "")
	job := servers.NewJob(u, sv)
	creds := servers.Credentials{Store: th.Store(), Hub: servers.HubURLs{Hosts: servers.NewUserHosts("https://hub.test")}}
	if err := creds.Start(ctx, job); err != nil {
		t.Fatal(err)
	}
	if job.Env["JUPYTERHUB_HOST"] != "https://bob.hub.test" || job.Env["JUPYTERHUB_OAUTH_CALLBACK_URL"] != "https://bob.hub.test/user/bob/oauth_callback" {
		t.Errorf("env: JUPYTERHUB_HOST %q, callback %q", job.Env["JUPYTERHUB_HOST"], job.Env["JUPYTERHUB_OAUTH_CALLBACK_URL"])
	}
	if c, err := th.Store().Client(ctx, "jupyterhub-user-bob"); err != nil || c.RedirectURI != "https://bob.hub.test/user/bob/oauth_callback" {
		t.Errorf("bob's OAuth client redirects to %q (%v)", c.RedirectURI, err)
	}
}

func TestUserHostLabelsAreDNSSafe(t *testing.T) {
	for name, want := range map[string]string{"alice": "alice", "a.b": "", "x_y": "", "u-z": ""} {
		got := servers.Label(name)
		if want != "" && got != want {
			t.Errorf("Label(%q) = %q", name, got)
		}
		if want == "" && !strings.HasPrefix(got, "u-") {
			t.Errorf("Label(%q) = %q, want a u- hash label", name, got)
		}
	}
	if servers.Label("a.b") == servers.Label("a_b") {
		t.Error("two names share a host")
	}
}
