package cull

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// What jupyter_server 2.x answers at /api/kernels and /api/terminals (trimmed).
const (
	kernelsJSON = `[
 {"id": "5c6d", "name": "python3", "last_activity": "2026-12-02T01:10:00.123456Z", "execution_state": "idle", "connections": 1},
 {"id": "7e8f", "name": "python3", "last_activity": "2026-12-02T01:20:00.000001Z", "execution_state": "busy", "connections": 0}
]`
	terminalsJSON = `[{"name": "1", "last_activity": "2026-12-02T01:30:00.5Z"}]`
)

func TestTheServerIsAskedWithATokenForItAloneAndItsKernelsRead(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path+"?"+r.URL.RawQuery)
		secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "token ")
		tok, err := f.st.LookupToken(r.Context(), secret)
		if err != nil || !slices.Equal(tok.Scopes, []string{servers.AccessScope("alice", "")}) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/user/alice/api/kernels":
			w.Write([]byte(kernelsJSON))
		case "/user/alice/api/terminals":
			w.Write([]byte(terminalsJSON))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	sv := f.running("alice", "", false, f.t0)
	sv.Port, _ = strconv.Atoi(port)

	k := NewServerKernels(f.st, func(u, s string) string { return servers.URL("", u, s) })
	w, err := k.Work(ctx, sv)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Busy || !w.Last.Equal(time.Date(2026, 12, 2, 1, 30, 0, 5e8, time.UTC)) {
		t.Errorf("work = %+v, want busy, last at the terminal's 01:30:00.5", w)
	}
	if _, err := k.Work(ctx, sv); err != nil {
		t.Fatal(err)
	}
	toks, _ := f.st.Tokens(ctx, sv.UserID, store.KindServer)
	if len(toks) != 1 || toks[0].ServerID != sv.ID {
		t.Errorf("tokens %+v: want one, tied to the server so that its stop revokes it", toks)
	}
	if len(paths) != 4 || paths[0] != "/user/alice/api/kernels?no_track_activity=1" {
		t.Errorf("asked %v", paths)
	}
	// The stop revokes it (as Credentials.Stop does); the next run gets a new one.
	f.st.DeleteServerTokens(ctx, sv.ID, "")
	sv.Started = sv.Started.Add(time.Hour)
	if _, err := k.Work(ctx, sv); err != nil {
		t.Errorf("after a restart of the server: %v", err)
	}
}

func TestAServerThatRefusesTheTokenIsAnError(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	sv := f.running("alice", "", false, f.t0)
	sv.Port, _ = strconv.Atoi(port)
	k := NewServerKernels(f.st, func(u, s string) string { return servers.URL("", u, s) })
	if _, err := k.Work(context.Background(), sv); err == nil {
		t.Fatal("no error")
	}
	if len(k.tokens) != 0 {
		t.Error("a refused token is kept")
	}
}
