package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// BenchmarkListUsersHTTP is GET /hub/api/users?limit=N through the whole hub, as make bench
// asks it of both hubs: an admin's token, 1,000 users, a quarter of them with a (stopped)
// server record, so the per-user reads of servers and auth state are paid as in life.
func BenchmarkListUsersHTTP(b *testing.B) {
	th := hubtest.New(b, func(c *config.Config) { c.Hub.APIPageMaxLimit = 1000 })
	admin := th.User("root-admin", true)
	ctx := context.Background()
	for i := range 999 {
		u, err := th.Store().CreateUser(ctx, fmt.Sprintf("user%05d", i), false)
		if err != nil {
			b.Fatal(err)
		}
		if i%4 == 0 {
			if _, err := th.Store().Server(ctx, u.ID, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, page := range []int{200, 1000} {
		b.Run(fmt.Sprintf("limit=%d", page), func(b *testing.B) {
			path := fmt.Sprintf("/hub/api/users?limit=%d&include_stopped_servers=1", page)
			for b.Loop() {
				if r := th.Do("GET", path, admin, ""); r.Status != 200 {
					b.Fatalf("GET %s = %d %s", path, r.Status, r.Body)
				}
			}
			b.ReportMetric(float64(page)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

// BenchmarkListUsersHTTPParallel is BenchmarkListUsersHTTP with requests in flight together
// (4 per CPU), as make bench's c=4 and beyond: what a pool of readers beside the one writer
// could win.
func BenchmarkListUsersHTTPParallel(b *testing.B) {
	th := hubtest.New(b, func(c *config.Config) { c.Hub.APIPageMaxLimit = 1000 })
	admin := th.User("root-admin", true)
	ctx := context.Background()
	for i := range 999 {
		if _, err := th.Store().CreateUser(ctx, fmt.Sprintf("user%05d", i), false); err != nil {
			b.Fatal(err)
		}
	}
	for _, page := range []int{200, 1000} {
		b.Run(fmt.Sprintf("limit=%d", page), func(b *testing.B) {
			path := fmt.Sprintf("/hub/api/users?limit=%d", page)
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if r := th.Do("GET", path, admin, ""); r.Status != 200 {
						b.Errorf("GET %s = %d", path, r.Status)
						return
					}
				}
			})
			b.ReportMetric(float64(page)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

// BenchmarkGetUserHTTP is GET /hub/api/users/{name} through the whole hub with an admin's
// token, as make bench's "one user GET" asks it of both hubs.
func BenchmarkGetUserHTTP(b *testing.B) {
	th := hubtest.New(b)
	admin := th.User("root-admin", true)
	th.User("alice", false)
	for b.Loop() {
		if r := th.Do("GET", "/hub/api/users/alice", admin, ""); r.Status != 200 {
			b.Fatalf("GET = %d %s", r.Status, r.Body)
		}
	}
}
