package auth_test

import (
	"context"
	"testing"
)

// A service's token is known from the configuration: checking it reads nothing from the store.
func TestServiceTokenCostsNoStatement(t *testing.T) {
	th, tok := serviceHub(t)
	before := th.Store().Statements()
	c, err := th.Gate().FromToken(context.Background(), tok)
	if err != nil || c.Service == nil || c.Service.Name != "bench" {
		t.Fatalf("FromToken(service token) = %+v, %v", c, err)
	}
	if n := th.Store().Statements() - before; n != 0 {
		t.Errorf("checking a service's token ran %d statements, want none", n)
	}
}
