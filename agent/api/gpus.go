package api

import (
	"context"
	"net/http"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// GPUs is what the API shows of the host's GPUs. The wiring fills it in from the gpu package's
// allocator; the API does not import that package (agent/layout_test.go), so it sees GPUs only
// through this. A hub without it lists no GPUs.
type GPUs interface {
	// Devices lists every device the hub can grant, with its holder and NVML's counters now.
	Devices(ctx context.Context) ([]GPUDevice, error)
	// Held lists the devices a server holds, without counters (the server model shows them).
	Held(serverID int64) []GPUDevice
	// Waiting lists the lines of spawns waiting for a device, leaving out empty ones.
	Waiting() []GPUQueue
}

// GPUDevice is one whole GPU or MIG device (gpuModel writes it as JSON).
type GPUDevice struct {
	// Index is the GPU's NVML index (for a MIG device, its parent's), as nvidia-smi numbers them.
	Index int
	UUID  string // what CUDA_VISIBLE_DEVICES names: GPU-… or MIG-…
	Name  string
	// Profile is the MIG profile, e.g. "1g.10gb"; "" for a whole GPU.
	Profile    string
	ParentUUID string
	// Holder is the server holding it; nil while free.
	Holder *GPUHolder

	MemoryUsedBytes  uint64
	MemoryTotalBytes uint64
	// Utilization is the share of NVML's last sample period the GPU was busy, 0 to 1 (always 0
	// for MIG devices, which NVML does not sample).
	Utilization float64
}

// GPUHolder is the server a device is granted to.
type GPUHolder struct {
	User   string
	Server string // "" for the user's default server
	Since  time.Time
}

// GPUQueue is one line of spawns waiting for a device.
type GPUQueue struct {
	Profile string `json:"profile"` // "" for whole GPUs
	Waiting int    `json:"waiting"`
}

// gpuScope is what reading who holds which GPU takes: the scope that shows a server's spawner
// state (unit, port, devices) in the server model. admin:servers and the admin role include it.
const gpuScope = "admin:server_state"

// listGPUs is GET /hub/api/gpus: every device, who holds it, how busy it is, and who waits.
func (a *API) listGPUs(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes[gpuScope] {
		web.Error(w, http.StatusForbidden, "requires scope %s (or admin:servers)", gpuScope)
		return
	}
	devices := []GPUDevice{}
	queue := []GPUQueue{}
	if a.gpus != nil {
		list, err := a.gpus.Devices(r.Context())
		if err != nil {
			a.writeErr(w, err)
			return
		}
		devices = append(devices, list...)
		queue = append(queue, a.gpus.Waiting()...)
	}
	items := make([]map[string]any, len(devices))
	for i, d := range devices {
		items[i] = gpuModel(d, true)
	}
	web.JSON(w, http.StatusOK, map[string]any{"devices": items, "queue": queue})
}

// gpuModel is a device in JSON; withUsage adds the holder and counters.
func gpuModel(d GPUDevice, withUsage bool) map[string]any {
	m := map[string]any{"index": d.Index, "uuid": d.UUID, "name": d.Name, "profile": d.Profile}
	if d.ParentUUID != "" {
		m["parent_uuid"] = d.ParentUUID
	}
	if !withUsage {
		return m
	}
	m["holder"] = nil
	if h := d.Holder; h != nil {
		m["holder"] = map[string]any{"user": h.User, "server": h.Server, "since": web.ISOTime(h.Since)}
	}
	m["memory_used_bytes"] = d.MemoryUsedBytes
	m["memory_total_bytes"] = d.MemoryTotalBytes
	m["utilization"] = d.Utilization
	return m
}

// heldGPUs is a server's devices for its model's state.
func (a *API) heldGPUs(serverID int64) []map[string]any {
	out := []map[string]any{}
	if a.gpus == nil {
		return out
	}
	for _, d := range a.gpus.Held(serverID) {
		out = append(out, gpuModel(d, false))
	}
	return out
}

// metrics serves /hub/metrics to callers with read:metrics, as JupyterHub 5 does with
// authenticate_prometheus on.
func (a *API) metrics(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.Scopes["read:metrics"] {
		web.Error(w, http.StatusForbidden, "requires scope read:metrics")
		return
	}
	a.metricsHandler.ServeHTTP(w, r)
}
