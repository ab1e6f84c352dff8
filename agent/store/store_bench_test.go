package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

func benchStore(b *testing.B, users int) *Store {
	b.Helper()
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "hub.sqlite"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for i := range users {
		if _, err := s.CreateUser(context.Background(), fmt.Sprintf("user%05d", i), false); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkListUsers is one page of GET /hub/api/users as the store serves it (the API then
// reads each user's servers and groups on top).
func BenchmarkListUsers(b *testing.B) {
	for _, page := range []int{200, 1000} {
		b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
			s := benchStore(b, 1000)
			ctx := context.Background()
			for b.Loop() {
				us, total, err := s.ListUsers(ctx, UserQuery{Limit: page})
				if err != nil || len(us) != page || total != 1000 {
					b.Fatalf("ListUsers = %d users of %d, %v", len(us), total, err)
				}
			}
			b.ReportMetric(float64(page)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

// BenchmarkCreateUser is one user added, as each name of POST /hub/api/users is.
func BenchmarkCreateUser(b *testing.B) {
	s := benchStore(b, 0)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := s.CreateUser(ctx, fmt.Sprintf("new%07d", i), false); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLookupToken is the store's half of authenticating an API request.
func BenchmarkLookupToken(b *testing.B) {
	s, secret := benchTokenStore(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.LookupToken(ctx, secret); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupTokenOwner is LookupToken with its owner, as the Gate reads both for a request.
func BenchmarkLookupTokenOwner(b *testing.B) {
	s, secret := benchTokenStore(b)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := s.LookupTokenOwner(ctx, secret); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTokenStore is a store of one user with one API token, and the token's secret.
func benchTokenStore(b *testing.B) (*Store, string) {
	s := benchStore(b, 1)
	ctx := context.Background()
	u, err := s.GetUser(ctx, "user00000")
	if err != nil {
		b.Fatal(err)
	}
	_, secret, err := s.CreateToken(ctx, Token{UserID: u.ID, Kind: KindAPI, Scopes: []string{"inherit"}})
	if err != nil {
		b.Fatal(err)
	}
	return s, secret
}

// BenchmarkServersOfUsers is the second read of a users list page: the servers of every user
// on it, a quarter of whom have one (as BenchmarkListUsersHTTP in agent/api).
func BenchmarkServersOfUsers(b *testing.B) {
	for _, page := range []int{200, 1000} {
		b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
			s := benchStore(b, 1000)
			ctx := context.Background()
			ids := make([]int64, 0, page)
			us, _, err := s.ListUsers(ctx, UserQuery{Limit: page})
			if err != nil {
				b.Fatal(err)
			}
			for i, u := range us {
				ids = append(ids, u.ID)
				if i%4 == 0 {
					if _, err := s.Server(ctx, u.ID, ""); err != nil {
						b.Fatal(err)
					}
				}
			}
			for b.Loop() {
				svs, err := s.ServersOfUsers(ctx, ids, false)
				if err != nil || len(svs) != (page+3)/4 {
					b.Fatalf("ServersOfUsers = %d users with servers, %v", len(svs), err)
				}
			}
		})
	}
}
