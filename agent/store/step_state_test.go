package store

import (
	"context"
	"errors"
	"testing"
)

func TestStepStateComesBackWithTheServerUntilForgotten(t *testing.T) {
	s, path := open(t)
	ctx := context.Background()
	alice, _ := s.CreateUser(ctx, "alice", false)
	a, _ := s.Server(ctx, alice.ID, "")
	if a.StepState != nil {
		t.Fatalf("a new server has step state %v", a.StepState)
	}
	if err := s.SetStepState(ctx, a.ID, "vault", "accessor-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStepState(ctx, a.ID, "vault", "accessor-2"); err != nil { // replaces
		t.Fatal(err)
	}
	if err := s.SetStepState(ctx, a.ID, "other", `{"x": 1}`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.ServerByID(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.StepState) != 2 || got.StepState["vault"] != "accessor-2" || got.StepState["other"] != `{"x": 1}` {
		t.Fatalf("after reopen: %v", got.StepState)
	}
	list, _ := s.Servers(ctx, alice.ID, false)
	if len(list) != 1 || list[0].StepState["vault"] != "accessor-2" {
		t.Fatalf("Servers: %+v", list)
	}

	if err := s.SetStepState(ctx, a.ID, "vault", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStepState(ctx, a.ID, "vault", ""); err != nil {
		t.Errorf("forgetting twice: %v", err)
	}
	if got, _ := s.Server(ctx, alice.ID, ""); len(got.StepState) != 1 || got.StepState["vault"] != "" {
		t.Errorf("after forgetting vault's: %v", got.StepState)
	}
	if err := s.SetStepState(ctx, 9999, "vault", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("state for a server that does not exist: %v", err)
	}
	// Deleting a user deletes their servers and with them what steps kept.
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	var n int
	s.db.QueryRowContext(ctx, `SELECT count(*) FROM step_state`).Scan(&n)
	if n != 0 {
		t.Errorf("%d step_state rows left after deleting alice", n)
	}
}
