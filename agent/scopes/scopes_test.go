package scopes

import (
	"reflect"
	"testing"
)

func TestSelfCoversOwnServerOnly(t *testing.T) {
	alice := ForUser("alice", false)
	if !alice.Allows("access:servers", Target{User: "alice", Server: "", HasServer: true}) {
		t.Error("alice cannot access her own server")
	}
	if alice.Allows("access:servers", Target{User: "bob", HasServer: true}) {
		t.Error("alice can access bob's server")
	}
	if !alice.Allows("read:users:name", Target{User: "alice"}) {
		t.Error("read:users does not imply read:users:name")
	}
	if alice.HasAny("list:users") {
		t.Error("a plain user can list users")
	}
}

func TestAdminHasEverythingUnfiltered(t *testing.T) {
	admin := ForUser("root", true)
	for _, s := range []string{"list:users", "admin:users", "delete:servers", "read:tokens", "access:servers", "admin:auth_state"} {
		if !admin[s] {
			t.Errorf("admin lacks %s", s)
		}
	}
}

func TestTokenCannotExceedOwner(t *testing.T) {
	alice := ForUser("alice", false)
	tok := Intersect(Expand([]string{"admin:users", "read:users"}, "alice", alice), alice)
	if tok.HasAny("admin:users") {
		t.Errorf("token got admin:users its owner does not hold: %v", tok.List())
	}
	if !tok.Allows("read:users", Target{User: "alice"}) || tok.Allows("read:users", Target{User: "bob"}) {
		t.Errorf("unfiltered read:users should narrow to alice's own: %v", tok.List())
	}
}

func TestServerTokenScopes(t *testing.T) {
	alice := ForUser("alice", false)
	tok := Intersect(Expand([]string{"users:activity!user", "access:servers!server=alice/"}, "alice", alice), alice)
	want := []string{"access:servers!server=alice/", "read:users:activity!user=alice", "users:activity!user=alice"}
	if got := tok.List(); !reflect.DeepEqual(got, want) {
		t.Errorf("server token scopes = %v, want %v", got, want)
	}
}

func TestInheritIsOwnersScopes(t *testing.T) {
	admin := ForUser("root", true)
	tok := Intersect(Expand([]string{"inherit"}, "root", admin), admin)
	if !reflect.DeepEqual(tok, admin) {
		t.Error("inherit token differs from its owner's scopes")
	}
}

func TestGroupFilter(t *testing.T) {
	s := Expand([]string{"read:users!group=gpu"}, "x", nil)
	if !s.Allows("read:users:name", Target{User: "carol", Groups: []string{"gpu"}}) {
		t.Error("group filter does not reach a member")
	}
	if s.Allows("read:users", Target{User: "dave", Groups: []string{"cpu"}}) {
		t.Error("group filter reaches a non-member")
	}
}

func TestKnown(t *testing.T) {
	for s, want := range map[string]bool{"read:users": true, "access:servers!server=a/": true, "bogus": false, "read:users!evil": false} {
		if Known(s) != want {
			t.Errorf("Known(%q) = %v", s, !want)
		}
	}
}

// A filter on a metascope used to be dropped: a token asked for as "inherit!user=alice" got all of
// its admin owner's scopes, "self!user=bob" its owner's own. As in JupyterHub, it grants nothing.
func TestFilteredMetascopeGrantsNothing(t *testing.T) {
	admin := ForUser("root", true)
	for _, s := range []string{"inherit!user=alice", "all!group=gpu", "self!user=bob", "self!user", "inherit!server=root/"} {
		if got := Intersect(Expand([]string{s}, "root", admin), admin); len(got) != 0 {
			t.Errorf("%s grants %v", s, got.List())
		}
	}
	if got := Expand([]string{"inherit", "self"}, "root", admin); !reflect.DeepEqual(got, admin) {
		t.Error("unfiltered inherit and self changed")
	}
}
