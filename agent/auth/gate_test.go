package auth

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

func newGate(t *testing.T) *Gate {
	t.Helper()
	g, err := New(defaultConfig(), nil, nil, make([]byte, 32), make([]byte, 32), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestCookiesAreSecureOnlyBehindATrustedTLSProxy(t *testing.T) {
	g := newGate(t)
	req := httptest.NewRequest("GET", "/hub/login", nil)
	req.RemoteAddr = "@"
	req.Header.Set("X-Forwarded-Proto", "https")
	if !g.Secure(req.WithContext(web.OverProxySocket(req.Context()))) {
		t.Error("nginx said https over hub.proxy_socket, but cookies would not be Secure")
	}
	for _, from := range []string{"127.0.0.1:5555", "192.0.2.7:5555"} {
		req.RemoteAddr = from
		if g.Secure(req) {
			t.Errorf("X-Forwarded-Proto from %s over TCP made cookies Secure: user code on this host connects from loopback too", from)
		}
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

// Chromium drops the tab and goes to evil.example: "/\t/evil.example" is "//evil.example" to it.
func TestRedirectsWithControlCharactersAreRefused(t *testing.T) {
	g := newGate(t)
	for _, next := range []string{"/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/%09/ok-escaped-is-a-path", "/a\\b", "/\x7f/x"} {
		got := g.SafeNext(next)
		if strings.HasPrefix(next, "/%09") {
			if got != next {
				t.Errorf("SafeNext(%q) = %q: an escaped tab is a plain path", next, got)
			}
			continue
		}
		if got != "/hub/home" {
			t.Errorf("SafeNext(%q) = %q", next, got)
		}
	}
}

func defaultConfig() config.Config { return config.Default() }
