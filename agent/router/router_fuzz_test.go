package router_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// Any path under /user/ gets an answer, never a panic or a 5xx from the hub itself, and every
// redirect stays on the hub. Only alice's server runs; whatever reaches it must be hers once
// decoded (the path is passed on as it came, escapes and all, as configurable-http-proxy does).
func FuzzRouterPath(f *testing.F) {
	for _, s := range []string{"/user/alice/tree", "/user/alice", "/user/bob/x", "/user//x", "/user/alice/%2e%2e/bob/",
		"/user/ALICE/", "/user/alice/../../hub/api/users", "/user/alice/a%00b", "/user/%61lice/tree"} {
		f.Add(s)
	}
	h := hubtest.New(f)
	var got []string
	h.Serve("alice", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Path)
	}))
	f.Fuzz(func(t *testing.T, path string) {
		u, err := url.Parse(path)
		if err != nil || u.Path == "" || !strings.HasPrefix(u.Path, "/user/") {
			return
		}
		got = nil
		req := httptest.NewRequest("GET", "http://hub.test/", nil)
		req.URL = &url.URL{Path: u.Path, RawPath: u.RawPath}
		rec := httptest.NewRecorder()
		h.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q: %d", path, rec.Code)
		}
		if loc := rec.Header().Get("Location"); loc != "" && (!strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//")) {
			t.Fatalf("%q redirects off the hub to %q", path, loc)
		}
		for _, p := range got {
			if !strings.HasPrefix(p, "/user/alice/") {
				t.Fatalf("%q reached alice's server as %q", path, p)
			}
		}
	})
}
