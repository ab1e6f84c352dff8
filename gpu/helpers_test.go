package gpu

import (
	"fmt"
	"log/slog"
	"slices"
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
