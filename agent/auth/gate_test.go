package auth

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
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
