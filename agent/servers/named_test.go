package servers_test

import (
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
)

func TestServerNamesThatAreOneSafePathSegment(t *testing.T) {
	for _, ok := range []string{"gpu", "my-server", "exp_2", "v1.2", "a~b", "X", strings.Repeat("a", 64)} {
		if err := servers.ValidServerName(ok); err != nil {
			t.Errorf("servers.ValidServerName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "/", ".", "..", ".hidden", "with space", "ü", "a%2Fb", "a?b", "a#b", strings.Repeat("a", 65)} {
		if err := servers.ValidServerName(bad); err == nil {
			t.Errorf("servers.ValidServerName(%q) accepted", bad)
		}
	}
}
