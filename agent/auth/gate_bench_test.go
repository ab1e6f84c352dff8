package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
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

// BenchmarkServiceTokenCheck is the same for an admin service's token, as make bench's load
// generator and the idle culler send: it costs no statement.
func BenchmarkServiceTokenCheck(b *testing.B) {
	th, tok := serviceHub(b)
	ctx := context.Background()
	for b.Loop() {
		c, err := th.Gate().FromToken(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		if !c.Scopes.Allows("list:users", scopes.Target{}) {
			b.Fatal("an admin service may not list users")
		}
	}
}

// serviceHub is a hub with an admin service, and the service's token.
func serviceHub(tb testing.TB) (*hubtest.Hub, string) {
	tb.Helper()
	const tok = "0123456789abcdef0123456789abcdef"
	path := filepath.Join(tb.TempDir(), "token")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	th := hubtest.New(tb, func(c *config.Config) {
		c.Services = append(c.Services, config.Service{Name: "bench", APITokenFile: path, Roles: []string{"admin"}})
	})
	return th, tok
}
