package web

import (
	"net/url"
	"strings"
	"testing"
)

// A path with a "." or ".." segment, however it is escaped, is refused; one without is let
// through whatever else it holds.
func FuzzHasDotSegment(f *testing.F) {
	for _, s := range []string{"/hub/api/users/../x", "/user/alice/%2e%2e/bob", "/user/alice/.%2E/", "/user/a/b.ipynb", "/x/%2F..%2F", "/.", "/a/..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := HasDotSegment(p)
		climbs := false
		for _, seg := range strings.Split(p, "/") {
			if u, err := url.PathUnescape(seg); err == nil {
				for _, part := range strings.Split(u, "/") {
					if part == "." || part == ".." {
						climbs = true
					}
				}
			}
		}
		if climbs && !got {
			t.Fatalf("HasDotSegment(%q) = false, but a segment unescapes to . or ..", p)
		}
	})
}
