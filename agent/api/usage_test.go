package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// The server model's spawner state carries what the unit's cgroup shows, for callers that may
// read that state (admin:server_state); others see no state at all.
func TestServerStateShowsTheUnitsLiveUsage(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("root-admin", true)
	alice := th.User("alice", false)
	th.Serve("alice", nil)
	th.SetUsage("alice", 300<<20, 2*time.Second)

	var m struct {
		Servers map[string]struct {
			State *struct {
				Unit  string
				Usage *struct {
					MemoryBytes     uint64  `json:"memory_bytes"`
					CPUSeconds      float64 `json:"cpu_seconds"`
					CPUPercent      float64 `json:"cpu_percent"`
					CPUPercentSince string  `json:"cpu_percent_since"`
				}
			}
		}
	}
	r := th.Do("GET", "/hub/api/users/alice", admin, "")
	if err := json.Unmarshal(r.Body, &m); err != nil || r.Status != 200 {
		t.Fatalf("GET alice = %d %s", r.Status, r.Body)
	}
	st := m.Servers[""].State
	if st == nil || st.Usage == nil {
		t.Fatalf("no usage in the admin's view: %s", r.Body)
	}
	if st.Usage.MemoryBytes != 300<<20 || st.Usage.CPUSeconds != 2 || st.Usage.CPUPercent <= 0 || st.Usage.CPUPercentSince == "" {
		t.Errorf("usage = %+v, want 300 MiB, 2 s of CPU and a load since the start", *st.Usage)
	}

	m.Servers = nil
	r = th.Do("GET", "/hub/api/users/alice", alice, "")
	json.Unmarshal(r.Body, &m)
	if st := m.Servers[""].State; st != nil {
		t.Errorf("alice's own token sees the spawner state: %s", r.Body)
	}

	// Stopped: no usage, and the fake cgroup is gone as the kernel's would be.
	if r := th.Do("DELETE", "/hub/api/users/alice/server", admin, ""); r.Status != 204 && r.Status != 202 {
		t.Fatalf("stop = %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.Servers = nil
		r = th.Do("GET", "/hub/api/users/alice?include_stopped_servers", admin, "")
		json.Unmarshal(r.Body, &m)
		if sv, ok := m.Servers[""]; ok && sv.State != nil && sv.State.Usage == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stopped server still shows usage: %s", r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
