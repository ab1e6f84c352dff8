package oauth_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
)

// serverEnv runs the spawn pipeline's first step for a user's server, as a spawn does, and
// returns what it hands the single-user server: its API token, its OAuth client and URLs.
func serverEnv(t *testing.T, th *hubtest.Hub, user, server string) map[string]string {
	t.Helper()
	ctx := context.Background()
	u, err := th.Store().GetUser(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := th.Store().Server(ctx, u.ID, server)
	if err != nil {
		t.Fatal(err)
	}
	job := servers.NewJob(u, sv)
	if err := (servers.Credentials{Store: th.Store()}).Start(ctx, job); err != nil {
		t.Fatal(err)
	}
	return job.Env
}

// noRedirects is a client that returns a redirect instead of following it, as the tests
// look at where the provider sends the browser.
func noRedirects() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
