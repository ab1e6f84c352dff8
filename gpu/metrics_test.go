package gpu

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather scrapes a registry holding only the collector: metric name → "label=value,..." → value.
func gather(t *testing.T, c prometheus.Collector) map[string]map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry() // also checks Describe against Collect
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, f := range families {
		out[f.GetName()] = map[string]float64{}
		for _, m := range f.GetMetric() {
			out[f.GetName()][labelKey(m)] = m.GetGauge().GetValue()
		}
	}
	return out
}

func labelKey(m *dto.Metric) string {
	var kv []string
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName(), l.GetValue())
	}
	return key(kv...)
}

// key is how gather names a series: "name=value" pairs, sorted by name, joined by commas.
func key(kv ...string) string {
	var pairs []string
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, kv[i]+"="+kv[i+1])
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

func TestCollectorReadsDevicesAtScrapeTime(t *testing.T) {
	s := newDGXA100()
	d0 := s.Devices[0].(*server.Device)
	d0.MemoryInfo.Used = 3 << 30
	d0.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 42}, nvml.SUCCESS }
	a := newAllocator(t, Config{DefaultQuota: 1, Queue: true, Quota: map[string]int{"big": 8}}, s, newLedger())
	uuid0, _ := d0.GetUUID()
	uuid1, _ := s.Devices[1].GetUUID()
	c := NewCollector(a)

	// Free at first.
	m := gather(t, c)
	gpu0 := []string{"uuid", uuid0, "index", "0", "profile", ""}
	dev := func(kv ...string) string { return key(append(slices.Clone(gpu0), kv...)...) }
	if got, ok := m["jupyterhub_gpu_allocated"][dev("user", "", "server", "")]; !ok || got != 0 || len(m["jupyterhub_gpu_allocated"]) != 8 {
		t.Errorf("allocated before any grant: %v", m["jupyterhub_gpu_allocated"])
	}

	// Scraped again after alice takes GPU 0: the same collector sees the grant.
	mustAcquire(t, a, Holder{ServerID: 7, User: "alice", Server: "ml"}, Request{GPUs: 1})
	m = gather(t, c)
	if got := m["jupyterhub_gpu_allocated"][dev("user", "alice", "server", "ml")]; got != 1 {
		t.Errorf("GPU 0 held by alice/ml: %v", m["jupyterhub_gpu_allocated"])
	}
	if got, ok := m["jupyterhub_gpu_allocated"][key("uuid", uuid1, "index", "1", "profile", "", "user", "", "server", "")]; !ok || got != 0 {
		t.Errorf("GPU 1 free: %v", m["jupyterhub_gpu_allocated"])
	}
	if got := m["jupyterhub_gpu_memory_used_bytes"][dev()]; got != 3<<30 {
		t.Errorf("memory used %v", got)
	}
	if got := m["jupyterhub_gpu_memory_total_bytes"][dev()]; got != 40<<30 {
		t.Errorf("memory total %v", got)
	}
	if got := m["jupyterhub_gpu_utilization_ratio"][dev()]; got != 0.42 {
		t.Errorf("utilisation %v, want 0.42", got)
	}
	if got := m["jupyterhub_gpu_info"][dev("name", "Mock NVIDIA A100-SXM4-40GB", "parent_uuid", "")]; got != 1 {
		t.Errorf("info %v", m["jupyterhub_gpu_info"])
	}
	if got, ok := m["jupyterhub_gpu_queue_length"]["profile="]; !ok || got != 0 {
		t.Errorf("queue length with nobody waiting: %v", m["jupyterhub_gpu_queue_length"])
	}

	// Alice's quota is 1; bob waits for all eight GPUs (and so in line, since alice holds one).
	ctx, cancel := context.WithCancel(t.Context())
	queued, left := make(chan int, 8), make(chan struct{})
	go func() {
		defer close(left)
		a.Acquire(ctx, Holder{ServerID: 8, User: "bob"}, Request{GPUs: 8, Groups: []string{"big"}}, func(pos int) { queued <- pos })
	}()
	defer func() { cancel(); <-left }() // it logs through t: done before the test is
	select {
	case <-queued:
	case <-time.After(5 * time.Second):
		t.Fatal("bob did not queue")
	}
	if got := gather(t, c)["jupyterhub_gpu_queue_length"]["profile="]; got != 1 {
		t.Errorf("queue length with bob waiting = %v", got)
	}
}

func TestCollectorShowsMIGDevicesWithTheirProfile(t *testing.T) {
	a := newAllocator(t, generous, newDGXH100MIG(t), newLedger())
	m := gather(t, NewCollector(a))
	if n := len(m["jupyterhub_gpu_allocated"]); n != 7+2+6 {
		t.Errorf("%d devices, want 7 1g.10gb + 3g.40gb + 4g.40gb + 6 whole GPUs", n)
	}
	for _, p := range []string{"", "1g.10gb", "3g.40gb", "4g.40gb"} {
		if _, ok := m["jupyterhub_gpu_queue_length"]["profile="+p]; !ok {
			t.Errorf("no queue length for profile %q: %v", p, m["jupyterhub_gpu_queue_length"])
		}
	}
}
