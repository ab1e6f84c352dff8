package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestActiveUsersAreThoseActiveSinceTheCutoff(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for name, ago := range map[string]time.Duration{"today": time.Hour, "lastweek": 3 * 24 * time.Hour, "never": -1} {
		u, err := s.CreateUser(ctx, name, false)
		if err != nil {
			t.Fatal(err)
		}
		if ago >= 0 {
			if err := s.TouchUser(ctx, u.ID, now.Add(-ago)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for since, want := range map[time.Duration]int{24 * time.Hour: 1, 7 * 24 * time.Hour: 2} {
		if n, err := s.CountActiveUsers(ctx, now.Add(-since)); err != nil || n != want {
			t.Errorf("active in the last %s = %d, %v; want %d", since, n, err, want)
		}
	}
}
