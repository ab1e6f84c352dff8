package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestGPUGrantsAreKeptPerServerAcrossReopen(t *testing.T) {
	s, path := open(t)
	ctx := context.Background()
	alice, _ := s.CreateUser(ctx, "alice", false)
	bob, _ := s.CreateUser(ctx, "bob", false)
	a, _ := s.Server(ctx, alice.ID, "")
	b, _ := s.Server(ctx, bob.ID, "")

	if err := s.HoldGPUs(ctx, GPUGrant{ServerID: a.ID, Record: json.RawMessage(`{"devices":[{"uuid":"GPU-1"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.HoldGPUs(ctx, GPUGrant{ServerID: b.ID, Record: json.RawMessage(`{"devices":[{"uuid":"GPU-2"}]}`)}); err != nil {
		t.Fatal(err)
	}
	// A second Hold replaces the first: one grant per server.
	if err := s.HoldGPUs(ctx, GPUGrant{ServerID: a.ID, Record: json.RawMessage(`{"devices":[{"uuid":"GPU-3"}]}`)}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GPUGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ServerID != a.ID || string(got[0].Record) != `{"devices":[{"uuid":"GPU-3"}]}` || got[1].ServerID != b.ID {
		t.Fatalf("grants after reopen = %s", fmtGrants(got))
	}

	if err := s.ReleaseGPUs(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseGPUs(ctx, a.ID); err != nil {
		t.Errorf("releasing twice: %v", err)
	}
	if got, _ := s.GPUGrants(ctx); len(got) != 1 || got[0].ServerID != b.ID {
		t.Errorf("after releasing alice's: %s", fmtGrants(got))
	}

	// Deleting a user deletes their servers and with them their grants.
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GPUGrants(ctx); len(got) != 0 {
		t.Errorf("after deleting bob: %s", fmtGrants(got))
	}
}

func TestGPUGrantNeedsAServerAndJSON(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if err := s.HoldGPUs(ctx, GPUGrant{ServerID: 42, Record: json.RawMessage(`{}`)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("grant for a server that does not exist: %v, want ErrNotFound", err)
	}
	u, _ := s.CreateUser(ctx, "alice", false)
	sv, _ := s.Server(ctx, u.ID, "")
	if err := s.HoldGPUs(ctx, GPUGrant{ServerID: sv.ID, Record: json.RawMessage(`{not json`)}); err == nil {
		t.Error("a record that is not JSON was stored")
	}
	if got, _ := s.GPUGrants(ctx); len(got) != 0 {
		t.Errorf("refused grants were stored: %s", fmtGrants(got))
	}
}

func fmtGrants(gs []GPUGrant) string {
	b, _ := json.Marshal(gs)
	return string(b)
}
