package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// The one-statement lookups of a request's credential give the same owner as reading the user
// on their own, and refuse what has run out as LookupToken and LookupSession do.
func TestCredentialAndOwnerInOneLookup(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, "alice", true)
	groups := []string{"staff", "gpu"}
	u, err := s.UpdateUser(ctx, "alice", UserPatch{Groups: &groups})
	if err != nil {
		t.Fatal(err)
	}
	s.TouchUser(ctx, u.ID, time.Now())
	want, _ := s.UserByID(ctx, u.ID)

	tok, secret, _ := s.CreateToken(ctx, Token{UserID: u.ID, Kind: KindAPI, Scopes: []string{"read:users"}, Note: "n"})
	gotTok, owner, err := s.LookupTokenOwner(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(owner, want) {
		t.Errorf("token owner = %+v, want %+v", owner, want)
	}
	if plain, _ := s.LookupToken(ctx, secret); !reflect.DeepEqual(gotTok, plain) || gotTok.ID != tok.ID {
		t.Errorf("token = %+v, LookupToken gives %+v", gotTok, plain)
	}

	sess, cookie, _ := s.CreateSession(ctx, Session{UserID: u.ID, IdPSubject: "sub"}, time.Hour)
	gotSess, owner, err := s.LookupSessionOwner(ctx, cookie)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(owner, want) || gotSess.ID != sess.ID || gotSess.IdPSubject != "sub" {
		t.Errorf("session %+v of %+v, want session %s of %+v", gotSess, owner, sess.ID, want)
	}

	_, expired, _ := s.CreateToken(ctx, Token{UserID: u.ID, Kind: KindAPI, ExpiresAt: time.Now().Add(-time.Second)})
	if _, _, err := s.LookupTokenOwner(ctx, expired); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired token: %v, want ErrNotFound", err)
	}
	_, old, _ := s.CreateSession(ctx, Session{UserID: u.ID}, -time.Second)
	if _, _, err := s.LookupSessionOwner(ctx, old); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired session: %v, want ErrNotFound", err)
	}
	if _, _, err := s.LookupTokenOwner(ctx, "nonsense"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: %v, want ErrNotFound", err)
	}
}

// The page reads give what the one-user reads give, for every user of the page at once.
func TestPageReadsMatchOneUserReads(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	var ids []int64
	for i := range 5 {
		u, _ := s.CreateUser(ctx, fmt.Sprintf("u%d", i), false)
		ids = append(ids, u.ID)
		for _, name := range []string{"", "b"}[:i%3] {
			sv, err := s.Server(ctx, u.ID, name)
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				sv.State = Running
				s.SaveServer(ctx, sv)
			}
		}
		if i%2 == 0 {
			s.SetAuthState(ctx, u.ID, []byte{byte(i)})
		}
	}
	for _, active := range []bool{false, true} {
		page, err := s.ServersOfUsers(ctx, ids, active)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			one, _ := s.Servers(ctx, id, active)
			if len(one) != len(page[id]) || (len(one) > 0 && !reflect.DeepEqual(one, page[id])) {
				t.Errorf("servers of #%d (active %v): page has %+v, one-user read %+v", id, active, page[id], one)
			}
		}
	}
	states, err := s.AuthStates(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	users, err := s.UsersByID(ctx, append(ids, 9999))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		one, _ := s.AuthState(ctx, id)
		if string(one) != string(states[id]) {
			t.Errorf("auth state of #%d: page has %v, one-user read %v", id, states[id], one)
		}
		if u, _ := s.UserByID(ctx, id); !reflect.DeepEqual(u, users[id]) {
			t.Errorf("user #%d: page has %+v, one-user read %+v", id, users[id], u)
		}
	}
	if len(users) != len(ids) {
		t.Errorf("UsersByID found %d users for %d ids and one unknown", len(users), len(ids))
	}
}
