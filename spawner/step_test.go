package spawner

import (
	"context"
	"fmt"
	"os/user"
	"slices"
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

// The unit gets the device nodes an earlier step put on the job, and with CloseDevices a closed
// device policy whether or not there are any.
func TestStepPassesDevicesOn(t *testing.T) {
	// An account every Debian and Arch host has that is not root (the step refuses root).
	me, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	job := func(allow ...string) *servers.Job {
		j := servers.NewJob(store.User{Name: me.Username}, store.Server{UserName: me.Username, Unit: "jupyter-x.service", Port: 50000})
		j.DeviceAllow = allow
		return j
	}
	for _, c := range []struct {
		name       string
		close      bool
		allow      []string
		wantPolicy string
	}{
		{"no GPUs on the host", false, nil, ""},
		{"GPU host, no grant", true, nil, "closed"},
		{"GPU host, a grant", true, []string{"/dev/nvidia0 rw", "/dev/nvidiactl rw"}, "closed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewStep(nil, StepOptions{Cmd: []string{"/bin/true"}, CloseDevices: c.close})
			spec, err := s.spec(job(c.allow...))
			if err != nil {
				t.Fatal(err)
			}
			if spec.DevicePolicy != c.wantPolicy || !slices.Equal(spec.DeviceAllow, c.allow) {
				t.Errorf("DevicePolicy %q DeviceAllow %q, want %q %q", spec.DevicePolicy, spec.DeviceAllow, c.wantPolicy, c.allow)
			}
		})
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

// A step before the unit (a profile) overrides the command, the limits and the environment: the
// limits become the unit's properties (and MEM_LIMIT/CPU_LIMIT, as systemdspawner sets them), its
// environment wins over spawner.env, and what it leaves zero keeps the [spawner] settings.
func TestStepAppliesTheJobsUnitSettings(t *testing.T) {
	step := NewStep(nil, StepOptions{
		Cmd: []string{"/usr/bin/jupyterhub-singleuser"}, Args: []string{"--debug"},
		Env:       map[string]string{"SHARED": "spawner", "KEEP": "spawner"},
		MemoryMax: 1 << 30, CPUQuota: 100, TasksMax: 200,
	})
	job := servers.NewJob(store.User{Name: "nobody"}, store.Server{UserName: "nobody", Unit: "jupyter-nobody.service"})
	job.Env["SHARED"] = "step"
	job.Unit = servers.UnitSettings{
		Cmd:       []string{"/opt/conda/envs/torch/bin/jupyterhub-singleuser"},
		Env:       map[string]string{"SHARED": "profile", "CONDA_DEFAULT_ENV": "torch"},
		MemoryMax: 4 << 30, CPUQuota: 250,
	}
	spec, err := step.spec(job)
	if err != nil {
		t.Skipf("no usable account nobody here: %v", err)
	}
	if want := []string{"/opt/conda/envs/torch/bin/jupyterhub-singleuser", "--debug"}; !slices.Equal(spec.Command, want) {
		t.Errorf("Command = %q, want %q", spec.Command, want)
	}
	for k, want := range map[string]string{"SHARED": "profile", "KEEP": "spawner", "CONDA_DEFAULT_ENV": "torch", "MEM_LIMIT": "4294967296", "CPU_LIMIT": "2.5"} {
		if spec.Env[k] != want {
			t.Errorf("env %s = %q, want %q", k, spec.Env[k], want)
		}
	}
	props, err := unitProperties(spec)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range props {
		got[p.Name] = fmt.Sprint(p.Value.Value())
	}
	for k, want := range map[string]string{"MemoryMax": "4294967296", "CPUQuotaPerSecUSec": "2500000", "TasksMax": "200"} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}
