package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

// profiles are three of the seeds' list: datascience (on, the default), pytorch (on, for the
// gpu-users group and bob only) and tensorflow (off).
func profiles(c *config.Config) {
	c.Profiles = []config.Profile{
		{Name: "datascience", DisplayName: "Data science", Enabled: true, Default: true,
			Env: map[string]string{"VIRTUAL_ENV": "/opt/venvs/datascience"}, MemoryMax: 4 << 30, CPUQuota: 200},
		{Name: "pytorch", Enabled: true, Cmd: []string{"/opt/venvs/torch/bin/jupyterhub-singleuser"},
			MemoryMax: 8 << 30, TasksMax: 64, GPUs: 1, AllowedGroups: []string{"gpu-users"}, AllowedUsers: []string{"bob"}},
		{Name: "tensorflow", Enabled: false},
	}
}

func userOptions(t *testing.T, h *hubtest.Hub, token, name string) map[string]any {
	t.Helper()
	r := h.Do("GET", "/hub/api/users/"+name, token, "")
	var u struct {
		Servers map[string]struct {
			UserOptions map[string]any `json:"user_options"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(r.Body, &u); err != nil {
		t.Fatalf("GET /users/%s = %d %s", name, r.Status, r.Body)
	}
	return u.Servers[""].UserOptions
}

func stop(t *testing.T, h *hubtest.Hub, token, name string) {
	t.Helper()
	if r := h.Do("DELETE", "/hub/api/users/"+name+"/server", token, ""); r.Status != http.StatusNoContent {
		t.Fatalf("stop = %d %s", r.Status, r.Body)
	}
}

// A start that names no profile gets the default; its settings reach the unit step, and the
// choice is stored in user_options.
func TestAStartWithoutAProfileGetsTheDefault(t *testing.T) {
	h := hubtest.New(t, profiles)
	alice := h.User("alice", false)
	if r := h.Do("POST", "/hub/api/users/alice/server", alice, ""); r.Status != http.StatusCreated {
		t.Fatalf("start = %d %s", r.Status, r.Body)
	}
	if got := userOptions(t, h, alice, "alice")["profile"]; got != "datascience" {
		t.Errorf("user_options.profile = %v, want datascience", got)
	}
	job, _ := h.LastJob("alice")
	if job.Unit.MemoryMax != 4<<30 || job.Unit.CPUQuota != 200 || job.Unit.Env["VIRTUAL_ENV"] != "/opt/venvs/datascience" || len(job.Unit.Cmd) != 0 {
		t.Errorf("the unit step got %+v", job.Unit)
	}
}

// Disabled and unknown profiles are 400s, a profile the user may not use a 403, each saying
// what the user can pick instead; nothing starts.
func TestTheAPIRefusesDisabledUnknownAndForbiddenProfiles(t *testing.T) {
	h := hubtest.New(t, profiles)
	alice := h.User("alice", false)
	for _, c := range []struct {
		body   string
		status int
		says   string
	}{
		{`{"profile": "tensorflow"}`, http.StatusBadRequest, `profile "tensorflow" is disabled on this hub; choose one of "datascience"`},
		{`{"profile": "cobol"}`, http.StatusBadRequest, `there is no profile "cobol"`},
		{`{"profile": 3}`, http.StatusBadRequest, `name one profile`},
		{`{"profile": "pytorch"}`, http.StatusForbidden, `alice may not use profile "pytorch"`},
	} {
		r := h.Do("POST", "/hub/api/users/alice/server", alice, c.body)
		if msg, _ := r.JSON(t)["message"].(string); r.Status != c.status || !strings.Contains(msg, c.says) {
			t.Errorf("%s = %d %s, want %d saying %q", c.body, r.Status, r.Body, c.status, c.says)
		}
	}
	if _, started := h.LastJob("alice"); started {
		t.Error("a refused start reached the unit")
	}
	// An admin starting alice's server is held to what alice may use.
	admin := h.User("admin", true)
	if r := h.Do("POST", "/hub/api/users/alice/server", admin, `{"profile": "pytorch"}`); r.Status != http.StatusForbidden {
		t.Errorf("an admin starting alice's server with pytorch = %d %s", r.Status, r.Body)
	}
}

// A member of an allowed group gets the profile; the next start that names none reuses it,
// and one that names another switches.
func TestTheChoiceIsStoredAndReused(t *testing.T) {
	h := hubtest.New(t, profiles)
	carol := h.User("carol", false)
	if _, err := h.Store().CreateGroup(context.Background(), "gpu-users", nil, []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	if r := h.Do("POST", "/hub/api/users/carol/server", carol, `{"profile": "pytorch"}`); r.Status != http.StatusCreated {
		t.Fatalf("start with pytorch = %d %s", r.Status, r.Body)
	}
	job, _ := h.LastJob("carol")
	if job.Unit.Cmd[0] != "/opt/venvs/torch/bin/jupyterhub-singleuser" || job.Unit.MemoryMax != 8<<30 || job.Unit.TasksMax != 64 {
		t.Errorf("the unit step got %+v", job.Unit)
	}
	stop(t, h, carol, "carol")
	if r := h.Do("POST", "/hub/api/users/carol/server", carol, ""); r.Status != http.StatusCreated {
		t.Fatalf("start again = %d %s", r.Status, r.Body)
	}
	if got := userOptions(t, h, carol, "carol")["profile"]; got != "pytorch" {
		t.Errorf("the next start got %v, want the last one's pytorch", got)
	}
	if job, _ := h.LastJob("carol"); job.Unit.MemoryMax != 8<<30 {
		t.Errorf("the reused profile's limits did not reach the unit: %+v", job.Unit)
	}
	stop(t, h, carol, "carol")
	if r := h.Do("POST", "/hub/api/users/carol/server", carol, `{"profile": "datascience"}`); r.Status != http.StatusCreated {
		t.Fatalf("start with datascience = %d %s", r.Status, r.Body)
	}
	if job, _ := h.LastJob("carol"); job.Unit.MemoryMax != 4<<30 {
		t.Errorf("switching profiles kept the old one's limits: %+v", job.Unit)
	}
}

// Without [[profile]], user_options are stored as given and the unit gets [spawner]'s settings.
func TestWithoutProfilesNothingChanges(t *testing.T) {
	h := hubtest.New(t)
	alice := h.User("alice", false)
	if r := h.Do("POST", "/hub/api/users/alice/server", alice, `{"profile": "anything", "x": 1}`); r.Status != http.StatusCreated {
		t.Fatalf("start = %d %s", r.Status, r.Body)
	}
	if o := userOptions(t, h, alice, "alice"); o["profile"] != "anything" || o["x"] != float64(1) {
		t.Errorf("user_options = %v", o)
	}
	if job, _ := h.LastJob("alice"); job.Unit.MemoryMax != 0 || job.Unit.Env != nil || job.Unit.Cmd != nil {
		t.Errorf("the unit step got %+v", job.Unit)
	}
}

// A profile's GPU request reaches the gpu step as a user's would: bob's pytorch server gets a
// GPU without asking for one.
func TestAProfilesGPURequestReachesTheGPUStep(t *testing.T) {
	lib := dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB)
	nv := gpu.OpenNVML(gpu.NVMLOptions{Library: lib, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { nv.Close() })
	h := hubtest.NewWith(t, hubtest.Options{GPUs: nv, Config: []func(*config.Config){profiles}})
	bob := h.User("bob", false)
	if r := h.Do("POST", "/hub/api/users/bob/server", bob, `{"profile": "pytorch", "gpus": 0}`); r.Status != http.StatusCreated {
		t.Fatalf("start = %d %s", r.Status, r.Body)
	}
	job, _ := h.LastJob("bob")
	if job.Env["CUDA_VISIBLE_DEVICES"] == "" || len(job.DeviceAllow) == 0 {
		t.Errorf("no GPU for bob's pytorch server: env %v, DeviceAllow %v", job.Env, job.DeviceAllow)
	}
	if o := userOptions(t, h, bob, "bob"); o["gpus"] != float64(0) {
		t.Errorf("the stored user_options are not what bob asked for: %v", o)
	}
}
