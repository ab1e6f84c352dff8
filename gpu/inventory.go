package gpu

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Inventory is what NVML reported about this host's GPUs at one moment.
type Inventory struct {
	// Driver is the NVIDIA driver version, "" on a host without one.
	Driver string `json:"driver,omitempty"`
	// GPUs are the physical GPUs in NVML index order.
	GPUs []GPU `json:"gpus"`
	// Read is when the inventory was taken.
	Read time.Time `json:"read"`
}

// GPU is one physical GPU.
type GPU struct {
	Index int    `json:"index"`
	UUID  string `json:"uuid"` // "GPU-…"
	// Minor is the minor number of its device node: /dev/nvidia<Minor>.
	Minor       int    `json:"minor"`
	Name        string `json:"name"` // e.g. "NVIDIA A100-SXM4-40GB"
	MemoryBytes uint64 `json:"memory_bytes"`
	// MIG is true when the GPU runs in MIG mode. Such a GPU is never granted whole: only
	// its MIG devices are.
	MIG bool `json:"mig"`
	// MIGDevices are the GPU's MIG devices (one per compute instance), ordered by GPU
	// instance and compute instance id. Empty unless MIG is true.
	MIGDevices []MIGDevice `json:"mig_devices,omitempty"`
}

// MIGDevice is one compute instance inside a GPU instance of a GPU in MIG mode: what
// CUDA sees as one device.
type MIGDevice struct {
	UUID string `json:"uuid"` // "MIG-…"
	// Profile is NVIDIA's name for its size, e.g. "1g.10gb", "3g.40gb" or "1c.3g.40gb" (a
	// compute instance smaller than its GPU instance).
	Profile         string `json:"profile"`
	GPUInstance     int    `json:"gpu_instance"`
	ComputeInstance int    `json:"compute_instance"`
	MemoryBytes     uint64 `json:"memory_bytes"`
	// CapNodes are the /dev/nvidia-caps/nvidia-capN nodes that grant access to this GPU
	// instance and compute instance, in that order.
	CapNodes []string `json:"cap_nodes"`
}

// Device is one thing that can be granted to a server: a whole GPU (not in MIG mode) or
// one MIG device. Grants carry Devices, so a grant read back from the ledger still says
// which nodes and UUIDs its unit was given.
type Device struct {
	// UUID is what CUDA_VISIBLE_DEVICES names: "GPU-…" for a whole GPU, "MIG-…" for a
	// MIG device.
	UUID string `json:"uuid"`
	// GPU and Minor are the index and device-node minor of the GPU (for a MIG device: of
	// its parent).
	GPU         int    `json:"gpu"`
	Minor       int    `json:"minor"`
	Name        string `json:"name"`
	MemoryBytes uint64 `json:"memory_bytes"`
	// The rest is set for MIG devices only.
	Profile         string   `json:"profile,omitempty"`
	ParentUUID      string   `json:"parent_uuid,omitempty"`
	GPUInstance     int      `json:"gpu_instance,omitempty"`
	ComputeInstance int      `json:"compute_instance,omitempty"`
	CapNodes        []string `json:"cap_nodes,omitempty"`
}

// IsMIG reports whether d is a MIG device rather than a whole GPU.
func (d Device) IsMIG() bool { return d.Profile != "" }

// String names the device for people: "GPU 3", or "GPU 0 MIG 1g.10gb (gi 2, ci 0)".
func (d Device) String() string {
	if d.IsMIG() {
		return fmt.Sprintf("GPU %d MIG %s (gi %d, ci %d)", d.GPU, d.Profile, d.GPUInstance, d.ComputeInstance)
	}
	return fmt.Sprintf("GPU %d", d.GPU)
}

// Devices lists everything in the inventory that can be granted: each GPU not in MIG mode,
// and each MIG device of the GPUs that are.
func (inv Inventory) Devices() []Device {
	var out []Device
	for _, g := range inv.GPUs {
		if !g.MIG {
			out = append(out, Device{UUID: g.UUID, GPU: g.Index, Minor: g.Minor, Name: g.Name, MemoryBytes: g.MemoryBytes})
			continue
		}
		for _, m := range g.MIGDevices {
			out = append(out, Device{
				UUID: m.UUID, GPU: g.Index, Minor: g.Minor, Name: g.Name, MemoryBytes: m.MemoryBytes,
				Profile: m.Profile, ParentUUID: g.UUID, GPUInstance: m.GPUInstance,
				ComputeInstance: m.ComputeInstance, CapNodes: slices.Clone(m.CapNodes),
			})
		}
	}
	return out
}

// Profiles lists the MIG profiles the inventory offers, sorted, each once.
func (inv Inventory) Profiles() []string {
	var out []string
	for _, d := range inv.Devices() {
		if d.IsMIG() && !slices.Contains(out, d.Profile) {
			out = append(out, d.Profile)
		}
	}
	slices.Sort(out)
	return out
}

// Holder identifies who holds a grant: the server's id in the hub's store, plus the user
// and server names for messages ("" is the user's default server).
type Holder struct {
	ServerID int64  `json:"server_id"`
	User     string `json:"user"`
	Server   string `json:"server,omitempty"`
}

// String is "alice (server 7)" or "alice/gpu (server 8)".
func (h Holder) String() string {
	name := h.User
	if h.Server != "" {
		name += "/" + h.Server
	}
	return fmt.Sprintf("%s (server %d)", name, h.ServerID)
}

// Request is what a server asks for: GPUs whole GPUs, or one MIG device of MIGProfile
// (e.g. "1g.10gb"), or nothing when both are zero. Groups are the user's Unix or Keycloak
// groups, for the quota.
type Request struct {
	GPUs       int      `json:"gpus,omitempty"`
	MIGProfile string   `json:"mig_profile,omitempty"`
	Groups     []string `json:"groups,omitempty"`
}

// IsZero reports whether the request asks for no GPU at all.
func (r Request) IsZero() bool { return r.GPUs == 0 && r.MIGProfile == "" }

// count is how many devices the request takes (a MIG profile is one device).
func (r Request) count() int {
	if r.MIGProfile != "" {
		return 1
	}
	return r.GPUs
}

// pool names the kind of device the request draws from: "" for whole GPUs, else the
// normalised MIG profile.
func (r Request) pool() string { return normalizeProfile(r.MIGProfile) }

// String is "2 GPUs" or "a MIG 1g.10gb device".
func (r Request) String() string {
	if r.MIGProfile != "" {
		return "a MIG " + r.pool() + " device"
	}
	return plural(r.GPUs, "GPU")
}

// normalizeProfile accepts what people type for a profile: "1g.10gb", "MIG 1g.10gb",
// "1G.10GB".
func normalizeProfile(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	return strings.TrimSpace(strings.TrimPrefix(p, "mig"))
}

// Grant is what a server holds: the devices it was given. The zero Devices is the grant of
// a server that asked for none.
type Grant struct {
	Holder  Holder    `json:"holder"`
	Request Request   `json:"request"`
	Devices []Device  `json:"devices"`
	Since   time.Time `json:"since"`
}

// clone copies g so that callers cannot change the allocator's copy.
func (g Grant) clone() Grant {
	g.Devices = slices.Clone(g.Devices)
	for i := range g.Devices {
		g.Devices[i].CapNodes = slices.Clone(g.Devices[i].CapNodes)
	}
	return g
}

// Empty reports whether the grant holds no device.
func (g Grant) Empty() bool { return len(g.Devices) == 0 }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
