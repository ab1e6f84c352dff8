package oauth_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// Whatever a client puts in the authorize and token requests, the provider answers with a 4xx or
// a code for a registered redirect URI: never a 5xx, never a code sent elsewhere.
func FuzzOAuthParameters(f *testing.F) {
	f.Add("jupyterhub-user-alice", "/user/alice/oauth_callback", "code", "xyz", "authorization_code", "c")
	f.Add("jupyterhub-user-alice", "https://evil.example/user/alice/oauth_callback", "code", "", "authorization_code", "")
	f.Add("jupyterhub-user-bob", "//evil.example", "token", "s", "password", "x")
	f.Add("", "", "", "", "", "")
	h := hubtest.New(f)
	h.User("alice", false)
	h.Serve("alice", http.NotFoundHandler()) // registers alice's server as an OAuth client
	alice := h.Login("alice")
	f.Fuzz(func(t *testing.T, clientID, redirect, responseType, state, grant, code string) {
		q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {responseType}, "state": {state}}
		req := httptest.NewRequest("GET", "/hub/api/oauth2/authorize?"+q.Encode(), nil)
		req.AddCookie(alice)
		rec := httptest.NewRecorder()
		h.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("authorize %v: %d", q, rec.Code)
		}
		if loc := rec.Header().Get("Location"); rec.Code == http.StatusFound && strings.Contains(loc, "code=") &&
			!strings.HasPrefix(loc, "/user/alice/oauth_callback?") {
			t.Fatalf("authorize %v sent a code to %q", q, loc)
		}
		form := url.Values{"client_id": {clientID}, "client_secret": {state}, "grant_type": {grant}, "code": {code}, "redirect_uri": {redirect}}
		req = httptest.NewRequest("POST", "/hub/api/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec = httptest.NewRecorder()
		h.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code == http.StatusOK {
			t.Fatalf("token %v: %d %s", form, rec.Code, rec.Body)
		}
	})
}
