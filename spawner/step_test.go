package spawner

import (
	"context"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// An admin could create "root" or "daemon" through the API and start their server: the unit step
// refuses before anything reaches systemd (Units is nil here, so getting further would panic).
func TestStepRefusesRootAndSystemAccounts(t *testing.T) {
	step := NewStep(nil, StepOptions{Cmd: []string{"/bin/true"}, MinUID: 1000})
	for user, want := range map[string]string{"root": "never run as root", "daemon": "system account"} {
		job := servers.NewJob(store.User{Name: user}, store.Server{UserName: user, Unit: "jupyter-" + user + ".service"})
		err := step.Start(context.Background(), job)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start as %s: %v, want an error saying %q", user, err, want)
		}
	}
}

// A step before the unit (the NFS home) names the mounts the server needs; the unit gets them as
// RequiresMountsFor=, so systemd orders the server after them.
func TestStepPassesRequiredMounts(t *testing.T) {
	step := NewStep(nil, StepOptions{Cmd: []string{"/bin/true"}})
	job := servers.NewJob(store.User{Name: "nobody"}, store.Server{UserName: "nobody", Unit: "jupyter-nobody.service"})
	job.RequiresMounts = append(job.RequiresMounts, "/nonexistent")
	spec, err := step.spec(job)
	if err != nil {
		t.Skipf("no usable account nobody here: %v", err)
	}
	if len(spec.RequiresMountsFor) != 1 || spec.RequiresMountsFor[0] != "/nonexistent" {
		t.Errorf("RequiresMountsFor = %q, want [/nonexistent]", spec.RequiresMountsFor)
	}
}
