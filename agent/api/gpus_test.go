package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

// gpuHub is a hub on a host with two A100s (go-nvml's mock): GPU 0 reports 3 GiB in use and
// 42% busy. Alice's server holds GPU 0. It returns the hub, an admin's token, alice's token, and
// GPU 0's UUID.
func gpuHub(t *testing.T, cfg ...func(*config.Config)) (*hubtest.Hub, string, string, string) {
	t.Helper()
	lib := dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB, gpus.A100_SXM4_40GB)
	d0 := lib.Devices[0].(*server.Device)
	d0.MemoryInfo.Used = 3 << 30
	d0.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 42}, nvml.SUCCESS }
	nv := gpu.OpenNVML(gpu.NVMLOptions{Library: lib, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { nv.Close() })
	th := hubtest.NewWith(t, hubtest.Options{GPUs: nv, Config: cfg})
	admin := th.User("root-admin", true)
	alice := th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/server", alice, `{"gpus": 1}`); r.Status != 201 {
		t.Fatalf("alice's spawn with a GPU = %d %s", r.Status, r.Body)
	}
	uuid, _ := d0.GetUUID()
	return th, admin, alice, uuid
}

func TestAdminsSeeWhoHoldsWhichGPU(t *testing.T) {
	th, admin, alice, uuid0 := gpuHub(t, func(c *config.Config) {
		c.GPU.Queue = true
		c.Spawner.SlowSpawnTimeout = config.Duration(300 * time.Millisecond)
	})
	// Bob takes GPU 1; carol waits in line for one.
	for _, name := range []string{"bob", "carol"} {
		token := th.User(name, false)
		if r := th.Do("POST", "/hub/api/users/"+name+"/server", token, `{"gpus": 1}`); r.Status != 201 && r.Status != 202 {
			t.Fatalf("%s's spawn = %d %s", name, r.Status, r.Body)
		}
	}

	if r := th.Do("GET", "/hub/api/gpus", alice, ""); r.Status != 403 || !strings.Contains(string(r.Body), "admin:server_state") {
		t.Errorf("a user lists the GPUs: %d %s", r.Status, r.Body)
	}

	r := th.Do("GET", "/hub/api/gpus", admin, "")
	if r.Status != 200 {
		t.Fatalf("GET /hub/api/gpus = %d %s", r.Status, r.Body)
	}
	var body struct {
		Devices []struct {
			Index            int     `json:"index"`
			UUID             string  `json:"uuid"`
			Name             string  `json:"name"`
			Profile          *string `json:"profile"`
			MemoryUsedBytes  uint64  `json:"memory_used_bytes"`
			MemoryTotalBytes uint64  `json:"memory_total_bytes"`
			Utilization      float64 `json:"utilization"`
			Holder           *struct {
				User, Server, Since string
			} `json:"holder"`
		} `json:"devices"`
		Queue []struct {
			Profile *string `json:"profile"`
			Waiting int     `json:"waiting"`
		} `json:"queue"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("%v: %s", err, r.Body)
	}
	if len(body.Devices) != 2 || len(body.Queue) != 1 || body.Queue[0].Profile == nil || *body.Queue[0].Profile != "" || body.Queue[0].Waiting != 1 {
		t.Fatalf("listing (want carol in the line for whole GPUs): %s", r.Body)
	}
	d0, d1 := body.Devices[0], body.Devices[1]
	if d0.Index != 0 || d0.UUID != uuid0 || !strings.Contains(d0.Name, "A100") || d0.Profile == nil || *d0.Profile != "" {
		t.Errorf("GPU 0 is described as %+v", d0)
	}
	if d0.Holder == nil || d0.Holder.User != "alice" || d0.Holder.Server != "" || d0.Holder.Since == "" {
		t.Errorf("GPU 0's holder %+v, want alice's default server", d0.Holder)
	}
	if d0.MemoryUsedBytes != 3<<30 || d0.MemoryTotalBytes != 40<<30 || d0.Utilization != 0.42 {
		t.Errorf("GPU 0's counters %+v", d0)
	}
	if d1.Index != 1 || d1.Holder == nil || d1.Holder.User != "bob" {
		t.Errorf("GPU 1 %+v, want bob's", d1)
	}

	// The server model shows the server's GPUs in its state, to those who may read the state.
	state := func(token string) map[string]any {
		t.Helper()
		m := th.Do("GET", "/hub/api/users/alice", token, "").JSON(t)
		sv, _ := m["servers"].(map[string]any)[""].(map[string]any)
		st, _ := sv["state"].(map[string]any)
		return st
	}
	st := state(admin)
	held, _ := st["gpus"].([]any)
	if len(held) != 1 || held[0].(map[string]any)["uuid"] != uuid0 || held[0].(map[string]any)["index"] != 0.0 {
		t.Errorf("alice's server state for an admin: %v", st)
	}
	if st := state(alice); st != nil {
		t.Errorf("alice reads her server's state without admin:server_state: %v", st)
	}

	// Once alice stops, GPU 0 goes to carol, the first in line.
	if r := th.Do("DELETE", "/hub/api/users/alice/server", admin, ""); r.Status != 204 && r.Status != 202 {
		t.Fatalf("stop = %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		body.Devices, body.Queue = nil, nil
		json.Unmarshal(th.Do("GET", "/hub/api/gpus", admin, "").Body, &body)
		if h := body.Devices[0].Holder; h != nil && h.User == "carol" && len(body.Queue) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after alice stopped, GPU 0 is held by %+v and the line is %+v; want carol's and empty", body.Devices[0].Holder, body.Queue)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAHubWithoutGPUsListsNone(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("root-admin", true)
	r := th.Do("GET", "/hub/api/gpus", admin, "")
	if m := r.JSON(t); r.Status != 200 || len(m["devices"].([]any)) != 0 {
		t.Errorf("GET /hub/api/gpus without GPUs = %d %s", r.Status, r.Body)
	}
}

// scrape parses /hub/metrics as Prometheus does.
func scrape(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, body)
	}
	return fams
}

// series finds the sample of a family whose labels include want.
func series(f *dto.MetricFamily, want map[string]string) (float64, bool) {
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// Who may scrape is agent/metrics' test; here, what a scrape shows of the GPUs.
func TestMetricsShowTheGPUs(t *testing.T) {
	th, admin, _, uuid0 := gpuHub(t)
	r := th.Do("GET", "/hub/metrics", admin, "")
	if r.Status != 200 {
		t.Fatalf("scrape = %d %s", r.Status, r.Body)
	}
	fams := scrape(t, r.Body)
	gpu0 := map[string]string{"uuid": uuid0, "index": "0", "profile": ""}
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Errorf("no %s in the scrape", name)
			return
		}
		if f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %s, want a gauge", name, f.GetType())
		}
		if got, ok := series(f, labels); !ok || got != want {
			t.Errorf("%s%v = %v (found: %v), want %v", name, labels, got, ok, want)
		}
	}
	check("jupyterhub_gpu_memory_used_bytes", gpu0, 3<<30)
	check("jupyterhub_gpu_memory_total_bytes", gpu0, 40<<30)
	check("jupyterhub_gpu_utilization_ratio", gpu0, 0.42)
	check("jupyterhub_gpu_allocated", map[string]string{"uuid": uuid0, "user": "alice", "server": ""}, 1)
	check("jupyterhub_gpu_allocated", map[string]string{"index": "1", "user": ""}, 0)
	check("jupyterhub_gpu_queue_length", map[string]string{"profile": ""}, 0)
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Error("the hub's own Go and process metrics are missing")
	}
}

func TestMetricsWithoutAuthenticationWhenTurnedOff(t *testing.T) {
	th, _, _, _ := gpuHub(t, func(c *config.Config) { c.Hub.MetricsPublic = true })
	r := th.Do("GET", "/hub/metrics", "", "")
	if r.Status != 200 || scrape(t, r.Body)["jupyterhub_gpu_allocated"] == nil {
		t.Errorf("scrape without a token, hub.metrics_public = true: %d %s", r.Status, r.Body)
	}
}
