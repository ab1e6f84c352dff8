package auth

import (
	"net/url"
	"strings"
	"testing"
)

// Whatever next a login is given, the browser ends up on this hub: the result is a local path
// that no browser reads as another host.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/hub/home", "//evil.example", "/\t/evil.example", "/\\evil.example", "https://evil.example",
		"/user/alice/tree?x=1#y", "/%2F%2Fevil.example", "/ /evil", "", "/\u2028/evil", "/.//evil"} {
		f.Add(s)
	}
	g := newGateF(f)
	f.Fuzz(func(t *testing.T, next string) {
		got := g.SafeNext(next)
		if got != next && got != "/hub/home" {
			t.Fatalf("SafeNext(%q) = %q: neither the input nor the fallback", next, got)
		}
		// What a browser does with it: drop tabs and newlines, treat \ as /.
		seen := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(got)
		u, err := url.Parse(seen)
		if err != nil {
			return // a browser would not follow it anywhere either
		}
		if u.Host != "" || u.Scheme != "" || !strings.HasPrefix(seen, "/") || strings.HasPrefix(seen, "//") {
			t.Fatalf("SafeNext(%q) = %q, which a browser reads as %q (host %q)", next, got, seen, u.Host)
		}
	})
}

func newGateF(f *testing.F) *Gate {
	g, err := New(defaultConfig(), nil, nil, make([]byte, 32), make([]byte, 32), nil, Options{})
	if err != nil {
		f.Fatal(err)
	}
	return g
}
