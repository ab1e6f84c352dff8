package auth

import (
	"net/http/httptest"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
)

func newGate(t *testing.T) *Gate {
	t.Helper()
	g, err := New(config.Default(), nil, nil, make([]byte, 32), make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestCookiesAreSecureOnlyBehindATrustedTLSProxy(t *testing.T) {
	g := newGate(t)
	req := httptest.NewRequest("GET", "/hub/login", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header.Set("X-Forwarded-Proto", "https")
	if !g.Secure(req) {
		t.Error("nginx on 127.0.0.1 said https, but cookies would not be Secure")
	}
	req.RemoteAddr = "192.0.2.7:5555"
	if g.Secure(req) {
		t.Error("a stranger's X-Forwarded-Proto made cookies Secure")
	}
}

func TestOpenRedirectIsRefused(t *testing.T) {
	g := newGate(t)
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", ""} {
		if got := g.SafeNext(next); got != "/hub/home" {
			t.Errorf("SafeNext(%q) = %q", next, got)
		}
	}
	if got := g.SafeNext("/user/alice/tree"); got != "/user/alice/tree" {
		t.Errorf("SafeNext dropped a local path: %q", got)
	}
}
