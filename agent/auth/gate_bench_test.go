package auth_test

import (
	"context"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
)

// BenchmarkTokenAndScopeCheck is what every API request pays before its handler runs: the
// token looked up, its owner's scopes expanded and intersected, and one scope checked.
func BenchmarkTokenAndScopeCheck(b *testing.B) {
	for _, who := range []struct {
		name  string
		admin bool
	}{{"user", false}, {"admin", true}} {
		b.Run(who.name, func(b *testing.B) {
			th := hubtest.New(b)
			tok := th.User("alice", who.admin)
			ctx := context.Background()
			for b.Loop() {
				c, err := th.Gate().FromToken(ctx, tok)
				if err != nil {
					b.Fatal(err)
				}
				if !c.Scopes.Allows("read:users", scopes.Target{User: "alice"}) {
					b.Fatal("alice may not read herself")
				}
			}
		})
	}
}
