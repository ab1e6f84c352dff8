package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// The HTTP surfaces and the lifecycle core reach systemd, PAM and the identity provider only
// through the interfaces the wiring fills in: none of them may import a concern.
func TestOnlyTheWiringImportsTheConcerns(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH")
	}
	const mod = "github.com/jupyterhub-go/jupyterhub-go/"
	forbidden := []string{mod + "spawner", mod + "pam", mod + "oidc", mod + "gpu", mod + "nfs", mod + "vault",
		"github.com/godbus/dbus", "github.com/coreos/go-systemd", "github.com/msteinert/pam"}
	for _, pkg := range []string{"api", "pages", "router", "oauth", "auth", "servers", "web", "profiles"} {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps ./agent/%s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("agent/%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
