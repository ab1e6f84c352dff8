package scopes

import (
	"regexp"
	"strings"
	"testing"
)

// Hub users are what config.ValidUsername accepts (no '/', '!' or '='), and the
// properties below hold for those names; the REST API refuses any other. The rule is
// copied here because config imports this package (to check the scopes of [[role]]s);
// config's TestUsernameRuleMatchesTheScopesFuzzTarget keeps the two the same.
var validUserName = regexp.MustCompile(`^[a-z_][a-z0-9_.@-]{0,63}$`)

func validUser(name string) bool { return validUserName.MatchString(name) }

// scopeNames are the names Allows is asked about: every scope the tree knows,
// the metascopes, and whatever the fuzzer names.
func scopeNames(extra ...string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !strings.Contains(s, "!") && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for name, subs := range implies {
		add(name)
		for _, s := range subs {
			add(s)
		}
	}
	for _, s := range append(append([]string{}, AdminRole...), selfScopes...) {
		add(s)
	}
	for _, s := range extra {
		name, _, _ := strings.Cut(s, "!")
		add(name)
	}
	return out
}

func splitScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' })
}

// FuzzKnownExpand: Known and Expand never panic, and a filtered scope that
// Known accepts expands only into scopes carrying that same filter (a bare
// "!user" becoming the owner's): a filter is never silently dropped.
func FuzzKnownExpand(f *testing.F) {
	for _, s := range []string{
		"read:users", "read:users!user=alice", "read:users!user", "admin:users!group=gpu",
		"access:servers!server=alice/", "servers!server=alice/gpu", "self", "inherit", "all",
		"self!user=bob", "inherit!user=bob", "all!group=x", "bogus", "read:users!evil",
		"read:users!user=a!b", "!user=alice", "users!service=x", "shares!server", "",
	} {
		f.Add(s, "alice", false)
		f.Add(s, "root", true)
	}
	f.Fuzz(func(t *testing.T, scope, owner string, admin bool) {
		known := Known(scope)
		ownerScopes := ForUser(owner, admin)
		got := Expand([]string{scope}, owner, ownerScopes)
		_ = got.List()
		name, filter, _ := strings.Cut(scope, "!")
		if !known {
			return
		}
		if filter == "" {
			if name != "self" && name != "inherit" && name != "all" && !got[name] {
				t.Fatalf("Expand(%q) = %v lacks the scope itself", scope, got.List())
			}
			return
		}
		if filter == "user" {
			filter = "user=" + owner
		}
		for s := range got {
			if !strings.HasSuffix(s, "!"+filter) {
				t.Fatalf("Expand(%q) for %q = %v: %q lost the filter !%s", scope, owner, got.List(), s, filter)
			}
		}
	})
}

// FuzzFilteredScope: a scope filtered to a user, a server or a group allows
// only targets that match the filter, and nothing its unfiltered form would
// not allow.
func FuzzFilteredScope(f *testing.F) {
	// kind: 0 user, 1 server, 2 group, 3 bare "!user" (the owner).
	for _, s := range []struct {
		name  string
		kind  uint8
		value string
	}{
		{"read:users", 0, "alice"}, {"admin:users", 0, "alice"}, {"access:servers", 1, "alice/"},
		{"servers", 1, "alice/gpu"}, {"read:users", 2, "gpu"}, {"admin:servers", 2, "gpu"},
		{"users:activity", 3, ""}, {"self", 0, "alice"}, {"inherit", 0, "alice"}, {"all", 2, "gpu"},
		{"self", 3, ""}, {"read:users", 0, "bob/x"}, {"access:servers", 1, "alice"},
	} {
		f.Add(s.name, s.kind, s.value, "alice", true, "bob", "", true, "gpu")
		f.Add(s.name, s.kind, s.value, "carol", false, "alice", "gpu", true, "cpu")
	}
	f.Fuzz(func(t *testing.T, name string, kind uint8, value, owner string, admin bool, tuser, tserver string, hasServer bool, tgroup string) {
		if !validUser(owner) || !validUser(tuser) || strings.Contains(name, "!") {
			return
		}
		var filter string
		switch kind % 4 {
		case 0:
			filter = "user=" + value
		case 1:
			filter = "server=" + value
		case 2:
			filter = "group=" + value
		case 3:
			filter, value = "user", owner
		}
		ownerScopes := ForUser(owner, admin)
		filtered := Expand([]string{name + "!" + filter}, owner, ownerScopes)
		unfiltered := Expand([]string{name}, owner, ownerScopes)
		tgt := Target{User: tuser, Server: tserver, HasServer: hasServer}
		if tgroup != "" {
			tgt.Groups = []string{tgroup}
		}
		var matches bool
		switch kind % 4 {
		case 0, 3:
			matches = tuser == value
		case 1:
			matches = hasServer && tuser+"/"+tserver == value
		case 2:
			matches = tgroup == value
		}
		for _, s := range scopeNames(name) {
			if !filtered.Allows(s, tgt) {
				continue
			}
			if !matches {
				t.Fatalf("%s!%s (owner %s) allows %s on %+v, which the filter does not name: %v", name, filter, owner, s, tgt, filtered.List())
			}
			if !unfiltered.Allows(s, tgt) {
				t.Fatalf("%s!%s allows %s on %+v but %s does not", name, filter, s, tgt, name)
			}
		}
	})
}

// FuzzIntersect: a token's scopes, intersected with its owner's, allow a
// target only where both the token and the owner do, and hold nothing that is
// in neither.
func FuzzIntersect(f *testing.F) {
	seeds := []struct{ token, owner string }{
		{"admin:users read:users", "self"},
		{"inherit", "self"},
		{"users:activity!user access:servers!server=alice/", "self"},
		{"read:users", "read:users!group=gpu"},
		{"read:users!user=bob", "read:users!group=gpu"},
		{"access:servers!server=alice/x/y", "access:servers!user=alice"},
		{"access:servers!server=bob/", "access:servers!user=alice"},
		{"servers!group=gpu", "servers"},
		{"all", "admin:users"},
		{"self", "read:users!user=alice"},
		{"inherit!user=bob", "admin:users servers"},
		{"read:users!user=alice!x", "read:users!user=alice"},
	}
	for _, s := range seeds {
		f.Add(s.token, s.owner, "alice", false, "alice", "", "gpu")
		f.Add(s.token, s.owner, "alice", true, "bob", "x", "gpu")
	}
	f.Fuzz(func(t *testing.T, tokRaw, ownerRaw, owner string, admin bool, tuser, tserver, tgroup string) {
		if !validUser(owner) || !validUser(tuser) {
			return
		}
		ownerScopes := Expand(splitScopes(ownerRaw), owner, nil)
		if admin {
			for s := range ForUser(owner, true) {
				ownerScopes[s] = true
			}
		}
		tok := Expand(splitScopes(tokRaw), owner, ownerScopes)
		got := Intersect(tok, ownerScopes)
		for s := range got {
			if !tok[s] && !ownerScopes[s] {
				t.Fatalf("Intersect holds %q, in neither the token %v nor the owner %v", s, tok.List(), ownerScopes.List())
			}
		}
		var targets []Target
		for _, u := range []string{owner, tuser} {
			for _, g := range [][]string{nil, {tgroup}} {
				targets = append(targets,
					Target{User: u, Groups: g},
					Target{User: u, Groups: g, HasServer: true},
					Target{User: u, Groups: g, Server: tserver, HasServer: true})
			}
		}
		names := scopeNames(append(append(tok.List(), ownerScopes.List()...), splitScopes(tokRaw)...)...)
		for _, s := range names {
			if got.HasAny(s) && !(tok.HasAny(s) && ownerScopes.HasAny(s)) {
				t.Fatalf("Intersect has some %s; token has some: %v, owner has some: %v", s, tok.HasAny(s), ownerScopes.HasAny(s))
			}
			for _, tgt := range targets {
				if got.Allows(s, tgt) && !(tok.Allows(s, tgt) && ownerScopes.Allows(s, tgt)) {
					t.Fatalf("Intersect allows %s on %+v; token: %v, owner: %v\ntoken %v\nowner %v\ngot %v",
						s, tgt, tok.Allows(s, tgt), ownerScopes.Allows(s, tgt), tok.List(), ownerScopes.List(), got.List())
				}
			}
		}
	})
}
