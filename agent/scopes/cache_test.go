package scopes

import (
	"maps"
	"testing"
)

func TestCachedExpansionIsTheExpansion(t *testing.T) {
	c := NewCache(8)
	for _, raw := range [][]string{
		UserRole,
		append(append([]string{}, AdminRole...), UserRole...),
		{"read:users!group=staff", "servers!user"},
		{"inherit"},
	} {
		want := Expand(raw, "alice", nil)
		for range 2 { // computed, then cached
			if got := c.Expand(raw, "alice"); !maps.Equal(got, want) {
				t.Errorf("cached Expand(%q) = %v, want %v", raw, got.List(), want.List())
			}
		}
	}
}

func TestCachedSetsAreTheCallersToChange(t *testing.T) {
	c := NewCache(8)
	c.Expand(UserRole, "alice")["admin:users"] = true
	if c.Expand(UserRole, "alice")["admin:users"] {
		t.Fatal("a caller's change to its set reached the cache")
	}
}

func TestCacheKeysTellOwnersAndListsApart(t *testing.T) {
	c := NewCache(8)
	if c.Expand(UserRole, "alice").Allows("read:users", Target{User: "bob"}) {
		t.Fatal("alice's self reaches bob")
	}
	if !c.Expand(UserRole, "bob").Allows("read:users", Target{User: "bob"}) {
		t.Fatal("bob's self came from alice's entry")
	}
	// A filter value may hold any byte: it must not join with another scope into one key.
	tricky := c.Expand([]string{"read:users!user=x\x00admin:users"}, "alice")
	if tricky["admin:users"] {
		t.Fatal("a filter's text was read as another scope")
	}
	if got := c.Expand([]string{"read:users!user=x", "admin:users"}, "alice"); !got["admin:users"] {
		t.Fatal("the two-scope list lost admin:users")
	}
}

func TestCacheStaysWithinItsBound(t *testing.T) {
	c := NewCache(4)
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		c.Expand(UserRole, name)
	}
	if len(c.sets) > 4 {
		t.Fatalf("cache holds %d sets, bound is 4", len(c.sets))
	}
}
