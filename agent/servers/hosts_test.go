package servers_test

import (
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
)

// A user's host is their name while it is a DNS label (at most 63 characters, no '.', '_' or
// '@', not starting "u-"), else a hash.
func TestLabelIsTheNameOnlyWhileItIsADNSLabel(t *testing.T) {
	for name, own := range map[string]bool{
		"alice": true, "a-1": true, "7": true, strings.Repeat("a", 63): true,
		strings.Repeat("a", 64): false, "a.b": false, "a_b": false, "a@b": false, "-a": false, "a-": false, "u-x": false,
	} {
		if got := servers.Label(name); (got == name) != own {
			t.Errorf("Label(%q) = %q", name, got)
		}
	}
}
