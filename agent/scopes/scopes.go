// Package scopes implements JupyterHub's RBAC scopes: the implication tree, the default roles, the
// !user=, !server= and !group= filters, and the checks the REST API makes.
//
// A scope is written "name" (everything) or "name!filter" (only matching objects). Sets are kept
// expanded, so "admin:users" also holds "read:users:name" and friends, which is what
// jupyterhub-singleuser expects to find in the "scopes" of GET /hub/api/user.
package scopes

import (
	"sort"
	"strings"
)

// implies is JupyterHub 5's scope tree (jupyterhub/scopes.py): each scope and the scopes it grants directly.
var implies = map[string][]string{
	"admin:users":    {"admin:auth_state", "users", "read:roles:users", "delete:users"},
	"users":          {"read:users", "list:users", "users:activity"},
	"list:users":     {"read:users:name"},
	"read:users":     {"read:users:name", "read:users:groups", "read:users:activity"},
	"read:roles":     {"read:roles:users", "read:roles:services", "read:roles:groups"},
	"users:activity": {"read:users:activity"},
	"admin:servers":  {"admin:server_state", "servers"},
	"servers":        {"read:servers", "delete:servers"},
	"read:servers":   {"read:users:name"},
	"tokens":         {"read:tokens"},
	"admin:groups":   {"groups", "read:roles:groups", "delete:groups"},
	"groups":         {"read:groups", "list:groups"},
	"list:groups":    {"read:groups:name"},
	"read:groups":    {"read:groups:name"},
	"admin:services": {"list:services", "read:services", "read:roles:services"},
	"list:services":  {"read:services:name"},
	"read:services":  {"read:services:name"},
	"shares":         {"access:servers", "read:shares", "users:shares", "groups:shares"},
	"users:shares":   {"read:users:shares"},
	"groups:shares":  {"read:groups:shares"},
}

// selfScopes are what "self" means for a user: everything about themselves and their servers.
var selfScopes = []string{
	"read:users", "users:activity", "servers", "access:servers", "tokens",
	"users:shares", "read:shares",
}

// Role scopes, as JupyterHub's default roles define them.
var (
	UserRole  = []string{"self"}
	AdminRole = []string{
		"admin-ui", "admin:users", "admin:servers", "admin:services", "tokens", "admin:groups",
		"list:services", "read:services", "read:hub", "proxy", "shutdown", "access:services",
		"access:servers", "read:roles", "read:metrics", "shares",
	}
)

// Set is an expanded set of scopes.
type Set map[string]bool

// Expand resolves "self", "inherit" and bare "!user" filters for owner, and adds every implied scope.
// ownerScopes are what "inherit" stands for (nil when the owner's own scopes are being expanded).
func Expand(raw []string, owner string, ownerScopes Set) Set {
	out := Set{}
	var add func(s string)
	add = func(s string) {
		if out[s] {
			return
		}
		name, filter, _ := strings.Cut(s, "!")
		switch {
		case filter != "" && (name == "self" || name == "inherit" || name == "all"):
			// A metascope with a filter grants nothing, as in JupyterHub: dropping
			// the filter would make "inherit!user=x" everything the owner holds.
			return
		case name == "self":
			for _, x := range selfScopes {
				add(x + "!user=" + owner)
			}
			return
		case name == "inherit" || name == "all":
			for x := range ownerScopes {
				out[x] = true
			}
			return
		case filter == "user":
			filter = "user=" + owner
		}
		full := name
		if filter != "" {
			full += "!" + filter
		}
		out[full] = true
		for _, sub := range implies[name] {
			if filter != "" {
				add(sub + "!" + filter)
			} else {
				add(sub)
			}
		}
	}
	for _, s := range raw {
		add(s)
	}
	return out
}

// ForUser returns the expanded scopes a user holds through their roles.
func ForUser(name string, admin bool) Set {
	raw := UserRole
	if admin {
		raw = append(append([]string{}, AdminRole...), UserRole...)
	}
	return Expand(raw, name, nil)
}

// Intersect keeps what a token asks for only as far as its owner holds it, so a token can never do
// more than the person it belongs to (and loses power when they do).
func Intersect(token, owner Set) Set {
	out := Set{}
	for s := range token {
		name, filter, _ := strings.Cut(s, "!")
		switch {
		case owner[name]:
			out[s] = true
		case filter != "" && owner[s]:
			out[s] = true
		case strings.HasPrefix(filter, "server="):
			user, _, _ := strings.Cut(strings.TrimPrefix(filter, "server="), "/")
			if owner[name+"!user="+user] {
				out[s] = true
			}
		case filter == "":
			// The token asks for the unfiltered scope; the owner has it only for some objects.
			for o := range owner {
				if strings.HasPrefix(o, name+"!") {
					out[o] = true
				}
			}
		}
	}
	return out
}

// Target is the object a request acts on.
type Target struct {
	User      string
	Server    string // server name; only meaningful with HasServer
	HasServer bool
	Groups    []string
	Service   string // a service's name, for !service= filters
}

// Allows reports whether the set grants scope on target.
func (s Set) Allows(scope string, t Target) bool {
	if s[scope] {
		return true
	}
	if t.User != "" && s[scope+"!user="+t.User] {
		return true
	}
	if t.HasServer && s[scope+"!server="+t.User+"/"+t.Server] {
		return true
	}
	if t.Service != "" && s[scope+"!service="+t.Service] {
		return true
	}
	for _, g := range t.Groups {
		if s[scope+"!group="+g] {
			return true
		}
	}
	return false
}

// HasAny reports whether the set holds scope for anything at all: list endpoints use it to decide
// between 403 and a (filtered) answer.
func (s Set) HasAny(scope string) bool {
	if s[scope] {
		return true
	}
	for x := range s {
		if strings.HasPrefix(x, scope+"!") {
			return true
		}
	}
	return false
}

// List returns the set sorted.
func (s Set) List() []string {
	out := make([]string, 0, len(s))
	for x := range s {
		out = append(out, x)
	}
	sort.Strings(out)
	return out
}

// Known reports whether name (without filter) is a scope JupyterHub defines.
func Known(scope string) bool {
	name, filter, _ := strings.Cut(scope, "!")
	if filter != "" && !(filter == "user" || filter == "server" ||
		strings.HasPrefix(filter, "user=") || strings.HasPrefix(filter, "server=") || strings.HasPrefix(filter, "group=") || strings.HasPrefix(filter, "service=")) {
		return false
	}
	if _, ok := implies[name]; ok {
		return true
	}
	for _, subs := range implies {
		for _, s := range subs {
			if s == name {
				return true
			}
		}
	}
	switch name {
	case "self", "inherit", "all", "admin-ui", "read:hub", "access:servers", "access:services", "proxy", "shutdown", "read:metrics", "read:users:shares", "users:shares":
		return true
	}
	return false
}

// Reach says which users a scope reaches: all (unfiltered), or the users named in !user= and
// !server= filters and the members of the groups in !group= filters.
func (s Set) Reach(scope string) (all bool, users, groups []string) {
	if s[scope] {
		return true, nil, nil
	}
	for x := range s {
		filter, ok := strings.CutPrefix(x, scope+"!")
		if !ok {
			continue
		}
		switch kind, value, _ := strings.Cut(filter, "="); kind {
		case "user":
			users = append(users, value)
		case "server":
			u, _, _ := strings.Cut(value, "/")
			users = append(users, u)
		case "group":
			groups = append(groups, value)
		}
	}
	sort.Strings(users)
	sort.Strings(groups)
	return false, users, groups
}

// Grantable checks the scopes a new token of user asks for: each must be a scope JupyterHub
// knows, and, expanded, within what the owner holds and what the requester holds, so a token
// never does more than either. It returns a message for the one that is not.
func Grantable(req []string, user string, owner, requester Set) (ok bool, unknown bool, msg string) {
	for _, s := range req {
		if !Known(s) {
			return false, true, "unknown scope " + s
		}
	}
	for s := range Expand(req, user, owner) {
		if !Intersect(Set{s: true}, owner)[s] || !Intersect(Set{s: true}, requester)[s] {
			return false, false, "not allowed to create a token with scope " + s
		}
	}
	return true, false, ""
}
