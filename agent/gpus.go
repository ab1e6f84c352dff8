package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jupyterhub-go/jupyterhub-go/agent/api"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

// gpuConfig is the [gpu] section as the gpu package takes it.
func gpuConfig(c config.GPU) gpu.Config {
	return gpu.Config{Enabled: c.Enabled, Queue: c.Queue, Quota: maps.Clone(c.Quota), DefaultQuota: c.DefaultQuota}
}

// NewAllocator makes the hub's GPU allocator for the [gpu] section, over nv (nil: GPUs are off
// whatever the section says) with its ledger in st. Open uses it; so does agent/hubtest.
func NewAllocator(ctx context.Context, cfg config.Config, st *store.Store, nv *gpu.NVML, log *slog.Logger) (*gpu.Allocator, error) {
	c := gpuConfig(cfg.GPU)
	if err := c.Validate(); err != nil {
		return nil, ConfigError{fmt.Errorf("gpu: %w", err)}
	}
	if nv == nil {
		c.Enabled = false
	}
	a, err := gpu.NewAllocator(ctx, gpu.AllocatorOptions{Config: c, NVML: nv, Ledger: gpu.StoreLedger(st), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("set up GPUs: %w", err)
	}
	return a, nil
}

// hasGPUs says whether the host has NVIDIA GPUs the hub manages: then every unit is closed to
// devices it was not granted (spawner.StepOptions.CloseDevices). It is decided once, at start.
func hasGPUs(a *gpu.Allocator) bool { return a != nil && len(a.Inventory().GPUs) > 0 }

// reconcileGPUs drops the grants of servers that no longer run, after the core's Reconcile has
// settled which do: every server the store still lists as not stopped keeps its grant (one whose
// unit would not stop stays "running" and keeps its devices; nothing is handed out twice).
func reconcileGPUs(ctx context.Context, st *store.Store, a *gpu.Allocator) error {
	active, err := st.Servers(ctx, 0, true)
	if err != nil {
		return fmt.Errorf("list servers to reconcile GPUs with: %w", err)
	}
	running := make(map[int64]bool, len(active))
	for _, sv := range active {
		running[sv.ID] = true
	}
	return a.Reconcile(ctx, running)
}

// gpuCollectors are the GPUs' metrics, for a hub with an allocator.
func gpuCollectors(a *gpu.Allocator) []prometheus.Collector {
	if a == nil {
		return nil
	}
	return []prometheus.Collector{gpu.NewCollector(a)}
}

// gpuView shows the allocator to the REST API, which must not import the gpu package.
type gpuView struct{ a *gpu.Allocator }

func (v gpuView) Devices(ctx context.Context) ([]api.GPUDevice, error) {
	usage, err := v.a.Usage(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.GPUDevice, len(usage))
	for i, u := range usage {
		d := apiDevice(u.Device)
		if u.Holder != nil {
			d.Holder = &api.GPUHolder{User: u.Holder.User, Server: u.Holder.Server, Since: u.Since}
		}
		d.MemoryUsedBytes, d.MemoryTotalBytes = u.MemoryUsedBytes, u.MemoryTotal()
		d.Utilization = float64(u.UtilizationPercent) / 100
		out[i] = d
	}
	return out, nil
}

func (v gpuView) Held(serverID int64) []api.GPUDevice {
	g, ok := v.a.Grant(serverID)
	if !ok {
		return nil
	}
	out := make([]api.GPUDevice, len(g.Devices))
	for i, d := range g.Devices {
		out[i] = apiDevice(d)
	}
	return out
}

// heldNames names the devices a server holds as nvidia-smi does ("GPU 0", "GPU 1 MIG 1g.10gb"),
// with the model, for the admin page.
func (v gpuView) heldNames(serverID int64) []string {
	var out []string
	for _, d := range v.Held(serverID) {
		n := fmt.Sprintf("GPU %d", d.Index)
		if d.Profile != "" {
			n += " MIG " + d.Profile
		}
		if d.Name != "" {
			n += " (" + d.Name + ")"
		}
		out = append(out, n)
	}
	return out
}

func (v gpuView) Waiting() []api.GPUQueue {
	w := v.a.Waiting()
	out := make([]api.GPUQueue, 0, len(w))
	for _, p := range slices.Sorted(maps.Keys(w)) {
		out = append(out, api.GPUQueue{Profile: p, Waiting: w[p]})
	}
	return out
}

func apiDevice(d gpu.Device) api.GPUDevice {
	return api.GPUDevice{Index: d.GPU, UUID: d.UUID, Name: d.Name, Profile: d.Profile, ParentUUID: d.ParentUUID}
}

// DescribeGPUs says what the [gpu] section gives on this host, for check-config: the GPUs NVML
// lists and how they are handed out. Why NVML finds none (no driver, ...) goes to log.
func DescribeGPUs(ctx context.Context, cfg config.Config, log *slog.Logger) string {
	g := cfg.GPU
	if !g.Enabled {
		return "gpu: off (gpu.enabled = false): the hub grants no GPUs and leaves servers' device access to systemd's default"
	}
	nv := gpu.OpenNVML(gpu.NVMLOptions{Logger: log})
	defer nv.Close()
	inv, err := nv.Inventory(ctx)
	if err != nil {
		return fmt.Sprintf("gpu: the GPUs cannot be read (%v); the hub would start and offer none", err)
	}
	if len(inv.GPUs) == 0 {
		return "gpu: no GPUs on this host; servers that ask for one are told so"
	}
	devs := inv.Devices()
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.String()
	}
	quota := fmt.Sprintf("default_quota %d", g.DefaultQuota)
	for _, grp := range slices.Sorted(maps.Keys(g.Quota)) {
		quota += fmt.Sprintf(", %s %d", grp, g.Quota[grp])
	}
	queue := "off"
	if g.Queue {
		queue = "on"
	}
	return fmt.Sprintf("gpu: %d GPUs, driver %s; grantable: %s; quota: %s; queue %s; every server runs with DevicePolicy=closed",
		len(inv.GPUs), inv.Driver, strings.Join(names, ", "), quota, queue)
}
