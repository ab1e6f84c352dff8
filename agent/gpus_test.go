package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
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
