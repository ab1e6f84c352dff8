package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func open(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hub.sqlite")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestSecretsAreNeverStoredInClear(t *testing.T) {
	s, path := open(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, "alice", false)
	_, tok, _ := s.CreateToken(ctx, Token{UserID: u.ID, Kind: KindAPI})
	_, sess, _ := s.CreateSession(ctx, Session{UserID: u.ID}, time.Hour)
	if err := s.SaveClient(ctx, OAuthClient{ID: "c", RedirectURI: "/cb"}, "client-secret-value"); err != nil {
		t.Fatal(err)
	}
	code, err := s.CreateCode(ctx, OAuthCode{ClientID: "c", UserID: u.ID, RedirectURI: "/cb", ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil || tok == "" || sess == "" {
		t.Fatalf("creating secrets failed: %v", err)
	}
	s.Close()
	var db []byte
	for _, suffix := range []string{"", "-wal"} {
		b, _ := os.ReadFile(path + suffix)
		db = append(db, b...)
	}
	for name, secret := range map[string]string{"token": tok, "session": sess, "client secret": "client-secret-value", "code": code} {
		if bytes.Contains(db, []byte(secret)) {
			t.Errorf("the %s is stored in clear", name)
		}
	}
}

func TestMigrationsRunOnceAndReopen(t *testing.T) {
	s, path := open(t)
	s.CreateUser(context.Background(), "alice", true)
	s.Close()
	s2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if u, err := s2.GetUser(context.Background(), "alice"); err != nil || !u.Admin {
		t.Errorf("alice after reopen: %+v %v", u, err)
	}
}

func TestExpiredCredentialsDoNotWork(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, "alice", false)
	_, tok, _ := s.CreateToken(ctx, Token{UserID: u.ID, Kind: KindAPI, ExpiresAt: time.Now().Add(-time.Second)})
	if _, err := s.LookupToken(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired token: %v", err)
	}
	s.SaveClient(ctx, OAuthClient{ID: "c", RedirectURI: "/cb"}, "secret")
	code, err := s.CreateCode(ctx, OAuthCode{ClientID: "c", UserID: u.ID, ExpiresAt: time.Now().Add(-time.Second)})
	if err != nil || code == "" {
		t.Fatalf("create code: %v", err)
	}
	if _, err := s.ConsumeCode(ctx, code); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired code: %v", err)
	}
}

func TestRenameOntoExistingNameIsRefused(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	s.CreateUser(ctx, "alice", false)
	s.CreateUser(ctx, "bob", false)
	name := "bob"
	if _, err := s.UpdateUser(ctx, "alice", UserPatch{Name: &name}); !errors.Is(err, ErrExists) {
		t.Errorf("rename onto bob: %v", err)
	}
}

// API clients name tokens by id ("a3"): after the newest token is deleted, the next one must not
// take its id, or a script holding "a3" would act on someone else's token.
func TestTokenIDsAreNeverReused(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, "alice", false)
	first, _, _ := s.CreateToken(ctx, Token{UserID: u.ID, Kind: KindAPI})
	if err := s.DeleteToken(ctx, u.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	next, _, _ := s.CreateToken(ctx, Token{UserID: u.ID, Kind: KindAPI})
	if next.ID == first.ID {
		t.Errorf("the new token got the deleted token's id %d", next.ID)
	}
}

// A token that may list only some users pages through those users, not through everyone with
// empty pages.
func TestListUsersWithinReach(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		s.CreateUser(ctx, n, false)
	}
	staff := []string{"staff"}
	s.UpdateUser(ctx, "carol", UserPatch{Groups: &staff})
	users, total, err := s.ListUsers(ctx, UserQuery{Limit: 10, Only: &Reach{Names: []string{"alice"}, Groups: []string{"staff"}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if total != 2 || len(names) != 2 || names[0] != "alice" || names[1] != "carol" {
		t.Errorf("reach alice + group staff: %v of %d", names, total)
	}
}

func TestGroupMembershipLivesInTheUsersGroups(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	s.CreateUser(ctx, "alice", false)
	s.CreateUser(ctx, "bob", false)
	staff := []string{"staff"}
	if _, err := s.UpdateUser(ctx, "alice", UserPatch{Groups: &staff}); err != nil {
		t.Fatal(err)
	}
	// A login's group is listed as a group.
	g, err := s.GetGroup(ctx, "staff")
	if err != nil || !reflect.DeepEqual(g.Users, []string{"alice"}) {
		t.Fatalf("staff = %+v, %v; want alice in it", g, err)
	}
	if _, err := s.CreateGroup(ctx, "staff", nil, nil); !errors.Is(err, ErrExists) {
		t.Errorf("creating staff again: %v, want ErrExists", err)
	}
	if _, err := s.CreateGroup(ctx, "empty", map[string]any{"k": "v"}, []string{"nobody"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("creating with an unknown member: %v, want ErrNotFound", err)
	}
	if _, err := s.GetGroup(ctx, "empty"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed create left the group behind: %v", err)
	}
	if _, err := s.CreateGroup(ctx, "empty", map[string]any{"k": "v"}, nil); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.AddGroupMembers(ctx, "staff", []string{"bob", "alice"}); !reflect.DeepEqual(g.Users, []string{"alice", "bob"}) {
		t.Errorf("after adding bob: %v", g.Users)
	}
	if u, _ := s.GetUser(ctx, "bob"); !reflect.DeepEqual(u.Groups, []string{"staff"}) {
		t.Errorf("bob's groups = %v", u.Groups)
	}
	list, total, err := s.ListGroups(ctx, GroupQuery{Limit: 10})
	if err != nil || total != 2 || list[0].Name != "staff" || list[1].Properties["k"] != "v" {
		t.Errorf("ListGroups = %+v, %d, %v", list, total, err)
	}
	if list, total, _ := s.ListGroups(ctx, GroupQuery{Limit: 10, Only: []string{"empty"}}); total != 1 || len(list) != 1 {
		t.Errorf("ListGroups only empty = %+v, %d", list, total)
	}
	if err := s.DeleteGroup(ctx, "staff"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.GetUser(ctx, "alice"); len(u.Groups) != 0 {
		t.Errorf("alice is still in %v after the group was deleted", u.Groups)
	}
}

func TestSharesGrantMergeRevokeAndCodes(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	alice, _ := s.CreateUser(ctx, "alice", false)
	bob, _ := s.CreateUser(ctx, "bob", false)
	sv, _ := s.Server(ctx, alice.ID, "")
	if _, err := s.GrantShare(ctx, sv.ID, bob.ID, "", []string{"access:servers!server=alice/"}); err != nil {
		t.Fatal(err)
	}
	sh, _ := s.GrantShare(ctx, sv.ID, bob.ID, "", []string{"read:servers!server=alice/"})
	if len(sh.Scopes) != 2 || sh.Server.UserName != "alice" || sh.UserName != "bob" {
		t.Errorf("merged share %+v", sh)
	}
	if list, _ := s.SharedWith(ctx, bob); len(list) != 1 {
		t.Errorf("bob's shares: %+v", list)
	}
	if _, err := s.RevokeShare(ctx, sv.ID, bob.ID, "", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking everything: %v, want the share gone", err)
	}
	code, secret, err := s.CreateShareCode(ctx, sv.ID, []string{"access:servers!server=alice/"}, time.Hour)
	if err != nil || code.APIID() == "" {
		t.Fatal(err)
	}
	if _, err := s.ExchangeShareCode(ctx, secret, bob); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.SharedWith(ctx, bob); len(list) != 1 {
		t.Errorf("after accepting the code bob has %d shares", len(list))
	}
	_, expired, _ := s.CreateShareCode(ctx, sv.ID, []string{"access:servers!server=alice/"}, -time.Second)
	if _, err := s.ExchangeShareCode(ctx, expired, bob); !errors.Is(err, ErrNotFound) {
		t.Errorf("an expired code was accepted: %v", err)
	}
}
