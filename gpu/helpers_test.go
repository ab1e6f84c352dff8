package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// testProc is a procfs tree holding the MIG access capabilities of the layout that
// newDGXH100MIG creates. The minors follow the driver's numbering (mig/config is 1,
// mig/monitor 2, then 9 minors per GPU instance: the GI's, then its CIs'; 135 per GPU).
const testProc = "testdata/proc"

// memLedger is the in-memory Ledger the tests use in place of the hub's sqlite store.
type memLedger struct {
	mu        sync.Mutex
	grants    map[int64]Grant
	failHold  error // returned by Hold when set
	failClear error // returned by Release when set
}

func newLedger() *memLedger { return &memLedger{grants: map[int64]Grant{}} }

func (l *memLedger) Load(context.Context) ([]Grant, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Collect(maps.Values(l.grants)), nil
}

func (l *memLedger) Hold(ctx context.Context, g Grant) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failHold != nil {
		return l.failHold
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.grants[g.Holder.ServerID] = g
	return nil
}

func (l *memLedger) Release(_ context.Context, serverID int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failClear != nil {
		return l.failClear
	}
	delete(l.grants, serverID)
	return nil
}

func (l *memLedger) servers() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.grants))
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openMock opens NVML on one of go-nvml's mock servers, reading capabilities from testProc.
func openMock(t *testing.T, lib nvml.Interface) *NVML {
	t.Helper()
	n := OpenNVML(NVMLOptions{Library: lib, ProcRoot: testProc, Logger: testLogger(t)})
	t.Cleanup(func() { n.Close() })
	return n
}

// newAllocator makes an allocator over lib with cfg (Enabled is forced on).
func newAllocator(t *testing.T, cfg Config, lib nvml.Interface, ledger Ledger) *Allocator {
	t.Helper()
	cfg.Enabled = true
	a, err := NewAllocator(t.Context(), AllocatorOptions{Config: cfg, NVML: openMock(t, lib), Ledger: ledger, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// generous is a quota that never gets in the way.
var generous = Config{DefaultQuota: 100}

// newDGXH100MIG is NVIDIA's 8-GPU H100 mock with MIG set up on the first two GPUs, through
// the mock's own MIG calls:
//
//	GPU 0: MIG mode, seven 1g.10gb devices (GPU instances 0-6, compute instance 0 each)
//	GPU 1: MIG mode, one 3g.40gb (GI 0) and one 4g.40gb (GI 1)
//	GPU 2-7: whole GPUs
//
// The mock has no MIG device handles (the handles CUDA's UUIDs come from), so each MIG
// GPU's GetMaxMigDeviceCount and GetMigDeviceHandleByIndex are set to answer with go-nvml's
// mock.Device, as a driver would.
func newDGXH100MIG(t *testing.T) *server.Server {
	t.Helper()
	s := dgxh100.New()
	layout := map[int][][2]int{ // GPU → (GI profile, CI profile) per instance
		0: slices.Repeat([][2]int{{nvml.GPU_INSTANCE_PROFILE_1_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE}}, 7),
		1: {
			{nvml.GPU_INSTANCE_PROFILE_3_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE},
			{nvml.GPU_INSTANCE_PROFILE_4_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE},
		},
	}
	for idx, instances := range layout {
		dev := s.Devices[idx].(*server.Device)
		if ret, _ := dev.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
			t.Fatalf("GPU %d: set MIG mode: %v", idx, ret)
		}
		var handles []nvml.Device
		for _, p := range instances {
			gip, ret := dev.GetGpuInstanceProfileInfo(p[0])
			if ret != nvml.SUCCESS {
				t.Fatalf("GPU %d: GI profile %d: %v", idx, p[0], ret)
			}
			gi, ret := dev.CreateGpuInstance(&gip)
			if ret != nvml.SUCCESS {
				t.Fatalf("GPU %d: create GI: %v", idx, ret)
			}
			cip, ret := gi.GetComputeInstanceProfileInfo(p[1], nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
			if ret != nvml.SUCCESS {
				t.Fatalf("GPU %d: CI profile %d: %v", idx, p[1], ret)
			}
			ci, ret := gi.CreateComputeInstance(&cip)
			if ret != nvml.SUCCESS {
				t.Fatalf("GPU %d: create CI: %v", idx, ret)
			}
			giInfo, _ := gi.GetInfo()
			ciInfo, _ := ci.GetInfo()
			giID, ciID := int(giInfo.Id), int(ciInfo.Id)
			uuid := fmt.Sprintf("MIG-%08x-0000-4000-8000-%012x", idx, giID*16+ciID)
			handles = append(handles, &mock.Device{
				GetUUIDFunc:              func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
				GetGpuInstanceIdFunc:     func() (int, nvml.Return) { return giID, nvml.SUCCESS },
				GetComputeInstanceIdFunc: func() (int, nvml.Return) { return ciID, nvml.SUCCESS },
			})
		}
		dev.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
		dev.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(handles) {
				return nil, nvml.ERROR_NOT_FOUND
			}
			return handles[i], nvml.SUCCESS
		}
	}
	return s
}

// newDGXA100 is NVIDIA's 8-GPU A100 mock, no MIG.
func newDGXA100() *server.Server { return dgxa100.New() }

// holder is server id's holder, owned by user.
func holder(id int64, user string) Holder { return Holder{ServerID: id, User: user} }

// mustAcquire acquires or fails the test.
func mustAcquire(t *testing.T, a *Allocator, h Holder, req Request) Grant {
	t.Helper()
	g, err := a.Acquire(t.Context(), h, req, nil)
	if err != nil {
		t.Fatalf("acquire %s for %s: %v", req, h, err)
	}
	return g
}

func uuids(devs []Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.UUID
	}
	return out
}
