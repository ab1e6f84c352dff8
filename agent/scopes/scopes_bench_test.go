package scopes

import "testing"

// BenchmarkExpandAndCheck is the pure-CPU part of authorising a request with an admin's
// "inherit" token: expand, intersect with the owner's scopes, check one.
func BenchmarkExpandAndCheck(b *testing.B) {
	owner := ForUser("root", true)
	for b.Loop() {
		s := Intersect(Expand([]string{"inherit"}, "root", owner), owner)
		if !s.Allows("admin:users", Target{User: "alice"}) {
			b.Fatal("an admin may not administer alice")
		}
	}
}
