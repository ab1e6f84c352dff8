package profiles

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

var set = New([]config.Profile{
	{Name: "minimal", Enabled: true},
	{Name: "datascience", Enabled: true, Default: true},
	{Name: "tensorflow", Enabled: false, Default: false},
	{Name: "cuda", Enabled: true, MIGProfile: "1g.10gb", CPUQuota: 150, Env: map[string]string{"A": "b"}, AllowedGroups: []string{"/gpu-users"}},
})

// A last choice that is no longer offered (disabled since, or the user left its group) falls
// back to the default rather than refusing a plain "start".
func TestPreselectedFallsBackToTheDefault(t *testing.T) {
	alice := store.User{Name: "alice"}
	for prev, want := range map[string]string{
		``: "datascience", `{"profile": "minimal"}`: "minimal", `{"profile": "tensorflow"}`: "datascience",
		`{"profile": "cuda"}`: "datascience", `{"profile": ["minimal"]}`: "minimal",
	} {
		if got := set.Preselected(alice, json.RawMessage(prev)); got != want {
			t.Errorf("previous %s: %q, want %q", prev, got, want)
		}
	}
	if got := New([]config.Profile{{Name: "a", Enabled: true}, {Name: "b", Enabled: true}}).Preselected(alice, nil); got != "a" {
		t.Errorf("without a default: %q, want the first", got)
	}
	if got := set.Preselected(store.User{Name: "bob", Groups: []string{"gpu-users"}}, json.RawMessage(`{"profile": "cuda"}`)); got != "cuda" {
		t.Errorf("a member of /gpu-users: %q, want cuda", got)
	}
}

// The step turns the chosen profile into what the later steps read: the unit's settings and
// the GPU request in the job's options, in place of the user's; the record keeps the choice.
func TestTheStepSetsWhatTheUnitAndGPUStepsRead(t *testing.T) {
	opts := json.RawMessage(`{"profile": "cuda", "gpus": 2, "other": true}`)
	job := servers.NewJob(store.User{Name: "bob", Groups: []string{"gpu-users"}}, store.Server{UserOptions: opts})
	if err := set.Step().Start(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if job.Unit.CPUQuota != 150 || job.Unit.Env["A"] != "b" {
		t.Errorf("Unit = %+v", job.Unit)
	}
	var got map[string]any
	json.Unmarshal(job.UserOptions, &got)
	if got["mig_profile"] != "1g.10gb" || got["gpus"] != nil || got["other"] != true || got["profile"] != "cuda" {
		t.Errorf("options for the gpu step: %s", job.UserOptions)
	}
	if string(job.Server.UserOptions) != string(opts) {
		t.Errorf("the record's options changed: %s", job.Server.UserOptions)
	}
	// A record naming a profile that is disabled now fails the spawn with the reason.
	job = servers.NewJob(store.User{Name: "alice"}, store.Server{UserOptions: json.RawMessage(`{"profile": "tensorflow"}`)})
	if err := set.Step().Start(context.Background(), job); err == nil {
		t.Error("a disabled profile's server started")
	}
}
