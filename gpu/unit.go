package gpu

import (
	"fmt"
	"slices"
	"strings"
)

// Unit is what a server's systemd unit needs to use its grant.
type Unit struct {
	// DeviceAllow are systemd DeviceAllow= entries ("/dev/nvidia0 rw"), sorted: the GPUs'
	// nodes, for MIG devices their parent's node and access capabilities, and the driver's
	// shared nodes (/dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools).
	DeviceAllow []string
	// Env names the devices for CUDA and NVIDIA's container tooling by UUID, in grant order,
	// and orders CUDA's devices by PCI bus id as NVML does.
	Env map[string]string
}

// sharedNodes are the driver nodes every CUDA process opens. MIG's mig/config and
// mig/monitor capabilities (nvidia-cap1, nvidia-cap2) are not among them: they let a
// process create or watch all instances, which a user server must not do.
var sharedNodes = []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}

// Unit returns the device nodes and environment for g. An empty grant gets an empty Unit:
// no device lines, no variables.
func (g Grant) Unit() Unit {
	if g.Empty() {
		return Unit{}
	}
	nodes := slices.Clone(sharedNodes)
	uuids := make([]string, 0, len(g.Devices))
	for _, d := range g.Devices {
		nodes = append(nodes, fmt.Sprintf("/dev/nvidia%d", d.Minor))
		nodes = append(nodes, d.CapNodes...)
		uuids = append(uuids, d.UUID)
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	allow := make([]string, len(nodes))
	for i, n := range nodes {
		allow[i] = n + " rw"
	}
	visible := strings.Join(uuids, ",")
	return Unit{
		DeviceAllow: allow,
		Env: map[string]string{
			"CUDA_VISIBLE_DEVICES":   visible,
			"NVIDIA_VISIBLE_DEVICES": visible,
			"CUDA_DEVICE_ORDER":      "PCI_BUS_ID",
		},
	}
}
