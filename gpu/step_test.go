package gpu

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

func TestRequestFromUserOptions(t *testing.T) {
	for opts, want := range map[string]Request{
		``:                                     {},
		`null`:                                 {},
		`{}`:                                   {},
		`{"profile": "cpu", "gpus": null}`:     {},
		`{"gpus": 0}`:                          {},
		`{"gpus": 2}`:                          {GPUs: 2},
		`{"gpus": "1"}`:                        {GPUs: 1}, // as an HTML form sends it
		`{"mig_profile": "1g.10gb"}`:           {MIGProfile: "1g.10gb"},
		`{"mig_profile": "MIG 3g.40gb"}`:       {MIGProfile: "3g.40gb"},
		`{"mig_profile": "", "gpus": 1}`:       {GPUs: 1},
		`{"gpus": 0, "mig_profile": "1g.5gb"}`: {MIGProfile: "1g.5gb"},
	} {
		got, err := requestFrom(json.RawMessage(opts))
		if err != nil || !equalRequest(got, want) {
			t.Errorf("requestFrom(%s) = %+v, %v; want %+v", opts, got, err, want)
		}
	}
	for opts, mention := range map[string]string{
		`[1]`:                                   "must be a JSON object",
		`{"gpus": -1}`:                          "user_options.gpus = -1",
		`{"gpus": 1.5}`:                         "whole number",
		`{"gpus": "two"}`:                       `user_options.gpus = "two"`,
		`{"gpus": true}`:                        "user_options.gpus",
		`{"mig_profile": 3}`:                    "user_options.mig_profile = 3",
		`{"gpus": 1, "mig_profile": "1g.10gb"}`: "not both",
	} {
		if _, err := requestFrom(json.RawMessage(opts)); err == nil || !strings.Contains(err.Error(), mention) {
			t.Errorf("requestFrom(%s) = %v, want an error mentioning %q", opts, err, mention)
		}
	}
}

func equalRequest(a, b Request) bool {
	return a.GPUs == b.GPUs && a.MIGProfile == b.MIGProfile && slices.Equal(a.Groups, b.Groups)
}

// stepOver is the gpu step over an allocator on lib, recording grants in a real store, with
// the allocator, the store, and alice with her default server in it.
func stepOver(t *testing.T, cfg Config, lib *server.Server) (Step, *Allocator, *store.Store, store.User, store.Server) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, _ := st.CreateUser(t.Context(), "alice", false)
	sv, err := st.Server(t.Context(), u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	sv.Unit = "jupyter-alice.service"
	a := newAllocator(t, cfg, lib, StoreLedger(st))
	return NewStep(a, testLogger(t)), a, st, u, sv
}

func TestStepGrantsTheUnitItsGPU(t *testing.T) {
	lib := newDGXA100()
	step, a, st, u, sv := stepOver(t, generous, lib)
	sv.UserOptions = json.RawMessage(`{"gpus": 2}`)
	job := servers.NewJob(u, sv)
	if err := step.Start(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	uuid0, _ := lib.Devices[0].GetUUID()
	uuid1, _ := lib.Devices[1].GetUUID()
	if got := job.Env["CUDA_VISIBLE_DEVICES"]; got != uuid0+","+uuid1 {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q, want GPU 0 and 1's UUIDs %s,%s", got, uuid0, uuid1)
	}
	want := []string{"/dev/nvidia-uvm rw", "/dev/nvidia-uvm-tools rw", "/dev/nvidia0 rw", "/dev/nvidia1 rw", "/dev/nvidiactl rw"}
	if !slices.Equal(job.DeviceAllow, want) {
		t.Errorf("DeviceAllow = %q, want %q", job.DeviceAllow, want)
	}
	// Recorded in the store before Start returned, so a hub that dies now knows.
	if recs, _ := st.GPUGrants(t.Context()); len(recs) != 1 || recs[0].ServerID != sv.ID {
		t.Errorf("ledger after start: %+v", recs)
	}

	if err := step.Stop(t.Context(), sv); err != nil {
		t.Fatal(err)
	}
	if _, held := a.Grant(sv.ID); held {
		t.Error("the grant outlived the stop")
	}
	if recs, _ := st.GPUGrants(t.Context()); len(recs) != 0 {
		t.Errorf("ledger after stop: %+v", recs)
	}
	if err := step.Stop(t.Context(), sv); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestStepGrantsAMIGDeviceWithItsCapabilities(t *testing.T) {
	step, a, _, u, sv := stepOver(t, generous, newDGXH100MIG(t))
	sv.UserOptions = json.RawMessage(`{"mig_profile": "3g.40gb"}`)
	job := servers.NewJob(u, sv)
	if err := step.Start(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	g, _ := a.Grant(sv.ID)
	if len(g.Devices) != 1 || g.Devices[0].Profile != "3g.40gb" {
		t.Fatalf("grant %+v", g)
	}
	if job.Env["CUDA_VISIBLE_DEVICES"] != g.Devices[0].UUID || !strings.HasPrefix(g.Devices[0].UUID, "MIG-") {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q, want the MIG device %s", job.Env["CUDA_VISIBLE_DEVICES"], g.Devices[0].UUID)
	}
	for _, node := range append([]string{"/dev/nvidia1 rw"}, capsRW(g.Devices[0].CapNodes)...) {
		if !slices.Contains(job.DeviceAllow, node) {
			t.Errorf("DeviceAllow %q lacks %s", job.DeviceAllow, node)
		}
	}
}

func capsRW(nodes []string) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n + " rw"
	}
	return out
}

func TestStepLeavesServersThatAskForNothingAlone(t *testing.T) {
	step, a, st, u, sv := stepOver(t, Config{DefaultQuota: 0}, newDGXA100())
	for _, opts := range []string{``, `{}`, `{"gpus": 0}`} {
		sv.UserOptions = json.RawMessage(opts)
		job := servers.NewJob(u, sv)
		if err := step.Start(t.Context(), job); err != nil {
			t.Errorf("%q: %v (a quota of 0 must not stop a server without GPUs)", opts, err)
		}
		if len(job.Env) != 0 || len(job.DeviceAllow) != 0 {
			t.Errorf("%q: env %v, devices %v", opts, job.Env, job.DeviceAllow)
		}
	}
	if recs, _ := st.GPUGrants(t.Context()); len(recs) != 0 || len(a.Grants()) != 0 {
		t.Errorf("a server without GPUs was recorded: %+v", recs)
	}
}

func TestStepRefusesWithAReasonTheUserCanActOn(t *testing.T) {
	for _, c := range []struct {
		cfg     Config
		lib     *server.Server
		opts    string
		mention string
	}{
		{generous, newDGXA100(), `{"gpus": "lots"}`, "user_options.gpus"},
		{Config{DefaultQuota: 1}, newDGXA100(), `{"gpus": 2}`, "GPU quota exceeded: alice may hold 1 GPU at a time (the default quota) and already holds 0; this server asks for 2 more"},
		{generous, dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB), `{"gpus": 2}`, "this server asks for 2 GPUs and this host has 1 to give whole"},
		{generous, newDGXA100(), `{"mig_profile": "1g.10gb"}`, "this host has no MIG devices"},
	} {
		step, a, _, u, sv := stepOver(t, c.cfg, c.lib)
		sv.UserOptions = json.RawMessage(c.opts)
		job := servers.NewJob(u, sv)
		err := step.Start(t.Context(), job)
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: %v, want it to say %q", c.opts, err, c.mention)
		}
		if len(job.DeviceAllow) != 0 || len(a.Grants()) != 0 {
			t.Errorf("%s: refused, yet devices %v grants %+v", c.opts, job.DeviceAllow, a.Grants())
		}
	}
}

// The store ledger gives a restarted allocator the grants of the servers that still run.
func TestStoreLedgerKeepsGrantsAcrossRestart(t *testing.T) {
	lib := newDGXA100()
	step, _, st, u, sv := stepOver(t, generous, lib)
	sv.UserOptions = json.RawMessage(`{"gpus": 1}`)
	if err := step.Start(t.Context(), servers.NewJob(u, sv)); err != nil {
		t.Fatal(err)
	}
	again := newAllocator(t, generous, lib, StoreLedger(st))
	g, held := again.Grant(sv.ID)
	if !held || len(g.Devices) != 1 || g.Holder != (Holder{ServerID: sv.ID, User: "alice"}) || g.Request.GPUs != 1 {
		t.Fatalf("after a restart alice holds %+v (%v)", g, held)
	}
	if g.Unit().Env["CUDA_VISIBLE_DEVICES"] == "" || len(g.Devices[0].UUID) == 0 {
		t.Errorf("the reloaded grant lost its devices: %+v", g)
	}

	// A damaged record stops the allocator rather than hand its devices out twice.
	if err := st.HoldGPUs(context.Background(), store.GPUGrant{ServerID: sv.ID, Record: json.RawMessage(`{"devices": 7}`)}); err != nil {
		t.Fatal(err)
	}
	_, err := NewAllocator(t.Context(), AllocatorOptions{Config: Config{Enabled: true}, NVML: openMock(t, lib), Ledger: StoreLedger(st), Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "GPU grant of server #") {
		t.Errorf("allocator over a damaged record: %v", err)
	}
}
