package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"

	"github.com/jupyterhub-go/jupyterhub-go/agent"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

// A grant whose server no longer runs (its spawn failed and the release did not reach the
// database, say) is dropped when the hub starts, after the core has reconciled its servers.
func TestHubStartDropsTheGrantsOfServersThatDoNotRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	inDir := func(c *config.Config) { c.Hub.DataDir = dir }
	lib := dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB)
	uuid0, _ := lib.Devices[0].GetUUID()

	// The previous hub left a grant for bob's stopped server in the database.
	cfg := config.Default()
	inDir(&cfg)
	st, err := agent.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := st.CreateUser(ctx, "bob", false)
	sv, _ := st.Server(ctx, bob.ID, "")
	err = gpu.StoreLedger(st).Hold(ctx, gpu.Grant{
		Holder: gpu.Holder{ServerID: sv.ID, User: "bob"}, Request: gpu.Request{GPUs: 1},
		Devices: []gpu.Device{{UUID: uuid0, GPU: 0, Minor: 0}}, Since: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	nv := gpu.OpenNVML(gpu.NVMLOptions{Library: lib, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer nv.Close()
	th := hubtest.NewWith(t, hubtest.Options{GPUs: nv, Config: []func(*config.Config){inDir}})
	admin := th.User("root-admin", true)
	holder := func() any {
		t.Helper()
		var body struct {
			Devices []struct{ Holder any } `json:"devices"`
		}
		if err := json.Unmarshal(th.Do("GET", "/hub/api/gpus", admin, "").Body, &body); err != nil || len(body.Devices) != 1 {
			t.Fatalf("GET /hub/api/gpus: %v %+v", err, body)
		}
		return body.Devices[0].Holder
	}
	// Until the reconcile the allocator trusts the ledger: nothing is handed out twice.
	if h := holder(); h == nil {
		t.Fatal("the recorded grant was not held again at start")
	}
	if err := th.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if h := holder(); h != nil {
		t.Errorf("after the start's reconcile GPU 0 is still held by %v", h)
	}
	if recs, _ := th.Store().GPUGrants(ctx); len(recs) != 0 {
		t.Errorf("the ledger still lists %+v", recs)
	}
	alice := th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/server", alice, `{"gpus": 1}`); r.Status != 201 {
		t.Errorf("alice's spawn on the freed GPU = %d %s", r.Status, r.Body)
	}
}

// A hub that dies right after the gpu step (SIGKILL, OOM, power) has a grant in its ledger for a
// server that never ran, or is half stopped; the next hub releases it in its start's reconcile,
// and the GPU can be had again. (The VM's crash test, TestHubKilledBetweenAnySpawnSteps, does
// the other steps with a real SIGKILL; the VM has no GPU, so the gpu step's case is here, with
// the spawn or stop ended where the kill would end it.)
func TestHubKilledAfterTheGPUStepLeavesNoGrant(t *testing.T) {
	for _, at := range []string{"gpu:start", "gpu:stop"} {
		t.Run(at, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			inDir := func(c *config.Config) {
				c.Hub.DataDir = dir
				// The POST waits this long for a spawn that the "kill" ended before it answered.
				c.Spawner.SlowSpawnTimeout = config.Duration(100 * time.Millisecond)
			}
			lib := dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB)
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			nv := gpu.OpenNVML(gpu.NVMLOptions{Library: lib, Logger: quiet})
			defer nv.Close()

			killed := make(chan struct{})
			dies := hubtest.NewWith(t, hubtest.Options{GPUs: nv, Config: []func(*config.Config){inDir}, AfterStep: func(step, half string) {
				if step+":"+half == at {
					close(killed)
					runtime.Goexit() // this hub does nothing more for that server
				}
			}})
			alice := dies.User("alice", false)
			if r := dies.Do("POST", "/hub/api/users/alice/server", alice, `{"gpus": 1}`); r.Status != 201 && r.Status != 202 {
				t.Fatalf("spawn = %d %s", r.Status, r.Body)
			}
			if at == "gpu:stop" {
				waitState(t, dies, alice, "running")
				dies.Do("DELETE", "/hub/api/users/alice/server", alice, "")
			}
			<-killed
			if recs, _ := dies.Store().GPUGrants(ctx); at == "gpu:start" && len(recs) != 1 {
				t.Fatalf("the dead hub's ledger holds %d grants, want the one it made", len(recs))
			}

			next := hubtest.NewWith(t, hubtest.Options{GPUs: nv, Config: []func(*config.Config){inDir}})
			if err := next.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			token := next.Token("alice")
			waitState(t, next, token, "stopped")
			if recs, _ := next.Store().GPUGrants(ctx); len(recs) != 0 {
				t.Errorf("after the restart the ledger still lists %+v", recs)
			}
			if r := next.Do("POST", "/hub/api/users/alice/server", token, `{"gpus": 1}`); r.Status != 201 && r.Status != 202 {
				t.Fatalf("alice's spawn after the restart = %d %s", r.Status, r.Body)
			}
			waitState(t, next, token, "running")
		})
	}
}

// waitState polls the user model until their default server is running or stopped.
func waitState(t *testing.T, th *hubtest.Hub, token, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var u struct {
			Server  *string
			Pending *string
		}
		r := th.Do("GET", "/hub/api/user", token, "")
		if err := json.Unmarshal(r.Body, &u); err != nil {
			t.Fatalf("GET /hub/api/user: %d %s", r.Status, r.Body)
		}
		got := "stopped"
		switch {
		case u.Pending != nil:
			got = *u.Pending
		case u.Server != nil:
			got = "running"
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's server is %s after 20 s, want %s", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
