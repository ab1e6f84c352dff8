package gpu

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func TestInventoryListsEveryGPUOfADGXA100(t *testing.T) {
	inv, err := openMock(t, newDGXA100()).Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if inv.Driver != "550.54.15" {
		t.Errorf("driver = %q", inv.Driver)
	}
	if len(inv.GPUs) != 8 {
		t.Fatalf("%d GPUs, want 8", len(inv.GPUs))
	}
	for i, g := range inv.GPUs {
		if g.Index != i || g.Minor != i || !strings.HasPrefix(g.UUID, "GPU-") {
			t.Errorf("GPU %d: index %d, minor %d, UUID %q", i, g.Index, g.Minor, g.UUID)
		}
		if g.Name != "Mock NVIDIA A100-SXM4-40GB" || g.MemoryBytes != 40<<30 || g.MIG {
			t.Errorf("GPU %d: name %q, memory %d, MIG %v", i, g.Name, g.MemoryBytes, g.MIG)
		}
	}
	if devs := inv.Devices(); len(devs) != 8 || devs[3].UUID != inv.GPUs[3].UUID || devs[3].IsMIG() {
		t.Errorf("devices: %+v", devs)
	}
}

func TestInventoryListsMIGDevicesWithTheirCapabilityNodes(t *testing.T) {
	inv, err := openMock(t, newDGXH100MIG(t)).Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gpu0, gpu1 := inv.GPUs[0], inv.GPUs[1]
	if !gpu0.MIG || !gpu1.MIG || inv.GPUs[2].MIG {
		t.Fatalf("MIG modes: %v %v %v", gpu0.MIG, gpu1.MIG, inv.GPUs[2].MIG)
	}
	if len(gpu0.MIGDevices) != 7 {
		t.Fatalf("GPU 0 has %d MIG devices, want 7", len(gpu0.MIGDevices))
	}
	for gi, m := range gpu0.MIGDevices {
		wantCaps := []string{capNode(3 + gi*9), capNode(4 + gi*9)}
		if m.Profile != "1g.10gb" || m.GPUInstance != gi || m.ComputeInstance != 0 || !slices.Equal(m.CapNodes, wantCaps) {
			t.Errorf("GPU 0 MIG %d: %+v, want 1g.10gb gi%d ci0 caps %v", gi, m, gi, wantCaps)
		}
		if !strings.HasPrefix(m.UUID, "MIG-") || m.MemoryBytes != 10<<30 {
			t.Errorf("GPU 0 MIG %d: UUID %q, memory %d", gi, m.UUID, m.MemoryBytes)
		}
	}
	want1 := []MIGDevice{
		{Profile: "3g.40gb", GPUInstance: 0, CapNodes: []string{"/dev/nvidia-caps/nvidia-cap138", "/dev/nvidia-caps/nvidia-cap139"}},
		{Profile: "4g.40gb", GPUInstance: 1, CapNodes: []string{"/dev/nvidia-caps/nvidia-cap147", "/dev/nvidia-caps/nvidia-cap148"}},
	}
	for i, m := range gpu1.MIGDevices {
		if m.Profile != want1[i].Profile || m.GPUInstance != want1[i].GPUInstance || !slices.Equal(m.CapNodes, want1[i].CapNodes) {
			t.Errorf("GPU 1 MIG %d: %+v, want %+v", i, m, want1[i])
		}
	}
	if got := inv.Profiles(); !slices.Equal(got, []string{"1g.10gb", "3g.40gb", "4g.40gb"}) {
		t.Errorf("profiles = %v", got)
	}
	devs := inv.Devices()
	if len(devs) != 6+7+2 {
		t.Fatalf("%d devices, want 6 whole GPUs + 9 MIG devices", len(devs))
	}
	if m := devs[0]; m.GPU != 0 || m.Minor != 0 || m.ParentUUID != gpu0.UUID || m.Profile != "1g.10gb" {
		t.Errorf("first device %+v is not GPU 0's first MIG device", m)
	}
}

func TestMIGDeviceWhoseCapabilitiesCannotBeReadIsLeftOut(t *testing.T) {
	var logs bytes.Buffer
	n := OpenNVML(NVMLOptions{Library: newDGXH100MIG(t), ProcRoot: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	inv, err := n.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.GPUs) != 8 || len(inv.GPUs[0].MIGDevices) != 0 {
		t.Fatalf("%d GPUs, GPU 0 has %d MIG devices; want 8 and none", len(inv.GPUs), len(inv.GPUs[0].MIGDevices))
	}
	if !strings.Contains(logs.String(), "access capabilities cannot be read") {
		t.Errorf("no warning logged:\n%s", logs.String())
	}
}

func TestHostWithoutDriverStartsWithNoGPUs(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// The real loader, pointed at a library that is not there: what a host without the
	// NVIDIA driver looks like to the hub.
	n := OpenNVML(NVMLOptions{LibraryPath: "/nonexistent/libnvidia-ml.so.1", Logger: log})
	defer n.Close()
	if !strings.Contains(logs.String(), "no GPUs") {
		t.Errorf("log does not say no GPUs:\n%s", logs.String())
	}
	inv, err := n.Inventory(t.Context())
	if err != nil || len(inv.GPUs) != 0 {
		t.Fatalf("inventory %+v, %v; want empty, nil", inv, err)
	}

	cfg := DefaultConfig()
	a, err := NewAllocator(t.Context(), AllocatorOptions{Config: cfg, NVML: n, Ledger: newLedger(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Acquire(t.Context(), holder(1, "alice"), Request{GPUs: 1}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "this host has no GPUs") {
		t.Errorf("GPU request on a host without GPUs: %v", err)
	}
	if g, err := a.Acquire(t.Context(), holder(2, "alice"), Request{}, nil); err != nil || !g.Empty() {
		t.Errorf("server without GPUs: %+v, %v", g, err)
	}
	if u, err := a.Usage(t.Context()); err != nil || len(u) != 0 {
		t.Errorf("usage %v, %v", u, err)
	}
}

func TestUsageShowsHolderMemoryAndUtilisation(t *testing.T) {
	s := newDGXA100()
	d0 := s.Devices[0].(*server.Device)
	d0.MemoryInfo.Used = 3 << 30
	d0.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 42}, nvml.SUCCESS }
	a := newAllocator(t, generous, s, newLedger())
	mustAcquire(t, a, holder(7, "alice"), Request{GPUs: 1})

	usage, err := a.Usage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) != 8 {
		t.Fatalf("%d entries, want 8", len(usage))
	}
	u0 := usage[0]
	if u0.Holder == nil || u0.Holder.User != "alice" || u0.Holder.ServerID != 7 || u0.Since.IsZero() {
		t.Errorf("GPU 0 holder %+v since %v", u0.Holder, u0.Since)
	}
	if u0.MemoryUsedBytes != 3<<30 || u0.MemoryTotalBytes != 40<<30 || u0.UtilizationPercent != 42 {
		t.Errorf("GPU 0 sample %+v", u0.Sample)
	}
	// The mock has no utilisation for the other GPUs: zero, not an error.
	if u1 := usage[1]; u1.Holder != nil || u1.UtilizationPercent != 0 || u1.MemoryTotalBytes != 40<<30 {
		t.Errorf("GPU 1: holder %v, sample %+v", u1.Holder, u1.Sample)
	}
}

func TestProfileNamesFollowNVIDIA(t *testing.T) {
	for _, c := range []struct {
		giID, giSlices, ciSlices uint32
		migMB, gpuGB             uint64
		want                     string
	}{
		{nvml.GPU_INSTANCE_PROFILE_1_SLICE, 1, 1, 4864, 40, "1g.5gb"}, // A100 40GB
		{nvml.GPU_INSTANCE_PROFILE_1_SLICE, 1, 1, 9856, 80, "1g.10gb"},
		{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 3, 3, 19968, 40, "3g.20gb"},
		{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 3, 1, 19968, 40, "1c.3g.20gb"},
		{nvml.GPU_INSTANCE_PROFILE_7_SLICE, 7, 7, 40192, 40, "7g.40gb"},
		{nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, 1, 1, 10240, 80, "1g.10gb+me"},
		{nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2, 1, 1, 20480, 80, "1g.20gb"},
	} {
		gi := nvml.GpuInstanceProfileInfo{Id: c.giID, SliceCount: c.giSlices, MemorySizeMB: c.migMB}
		ci := nvml.ComputeInstanceProfileInfo{SliceCount: c.ciSlices}
		if got := profileName(gi, ci, c.gpuGB<<30); got != c.want {
			t.Errorf("%d MiB of %d GB, %dc/%dg: %q, want %q", c.migMB, c.gpuGB, c.ciSlices, c.giSlices, got, c.want)
		}
	}
}
