package gpu

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// DefaultLibrary is the NVML library loaded at run time (dlopen), as the driver installs it.
const DefaultLibrary = "libnvidia-ml.so.1"

// NVMLOptions configures OpenNVML. The zero value loads the system's libnvidia-ml and reads
// /proc.
type NVMLOptions struct {
	// Library is the NVML to use; nil loads LibraryPath. Tests pass one of go-nvml's mocks.
	Library nvml.Interface
	// LibraryPath is the library to dlopen when Library is nil; "" is DefaultLibrary.
	LibraryPath string
	// ProcRoot is where procfs is mounted ("" is /proc); the MIG access capabilities are
	// read from <ProcRoot>/driver/nvidia/capabilities. Tests point it at a testdata tree.
	ProcRoot string
	Logger   *slog.Logger
}

// NVML reads this host's GPUs through NVML. The library is loaded at run time, so a hub
// built with GPU support runs on a host without the NVIDIA driver: there OpenNVML logs
// "no GPUs" and every inventory is empty. It is safe for concurrent use.
type NVML struct {
	lib      nvml.Interface
	libPath  string // for messages; "" when Library was given
	procRoot string
	log      *slog.Logger

	mu      sync.Mutex
	loaded  bool        // Init succeeded and Shutdown has not been called
	initErr nvml.Return // why the last Init failed
}

// OpenNVML loads NVML and initialises it. It does not fail: if the library is missing or
// the driver does not answer, it logs "no GPUs" with the reason and returns an NVML whose
// inventory is empty (Inventory tries to load the library again, so a driver installed
// later is found by the next refresh).
func OpenNVML(opts NVMLOptions) *NVML {
	n := &NVML{lib: opts.Library, procRoot: cmp.Or(opts.ProcRoot, "/proc"), log: opts.Logger}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.lib == nil {
		n.libPath = cmp.Or(opts.LibraryPath, DefaultLibrary)
		n.lib = nvml.New(nvml.WithLibraryPath(n.libPath))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if ret := n.initLocked(); ret != nvml.SUCCESS {
		n.log.Info("no GPUs: " + n.initFailure(ret))
	}
	return n
}

// initLocked initialises the library if it is not yet.
func (n *NVML) initLocked() nvml.Return {
	if n.loaded {
		return nvml.SUCCESS
	}
	ret := guard(func() nvml.Return { return n.lib.Init() })
	n.loaded = ret == nvml.SUCCESS
	n.initErr = ret
	return ret
}

// initFailure explains a failed nvmlInit to an operator.
func (n *NVML) initFailure(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "the NVML library (" + cmp.Or(n.libPath, DefaultLibrary) + ") cannot be loaded; install the NVIDIA driver to use GPUs"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "the NVIDIA kernel driver is not loaded (modprobe nvidia, or check dmesg)"
	case nvml.ERROR_NO_PERMISSION:
		return "NVML refused access (" + ret.Error() + "); the hub must be able to open /dev/nvidiactl"
	default:
		return "NVML did not initialise: " + ret.Error()
	}
}

// Close shuts NVML down. The NVML must not be used afterwards.
func (n *NVML) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.loaded {
		return nil
	}
	n.loaded = false
	if ret := guard(func() nvml.Return { return n.lib.Shutdown() }); ret != nvml.SUCCESS {
		return fmt.Errorf("shut NVML down: %w", ret)
	}
	return nil
}

// Inventory reads the GPUs now. A host without a working NVML has an empty inventory and no
// error; a GPU that fails to answer is left out with a warning, so one broken card does not
// hide the others. The error is for NVML failing as a whole, or ctx ending.
func (n *NVML) Inventory(ctx context.Context) (Inventory, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	inv := Inventory{Read: time.Now()}
	if ret := n.initLocked(); ret != nvml.SUCCESS {
		n.log.Debug("GPU inventory is empty", "reason", n.initFailure(ret))
		return inv, nil
	}
	inv.Driver, _ = call(n.lib.SystemGetDriverVersion)
	count, ret := call(n.lib.DeviceGetCount)
	if ret != nvml.SUCCESS {
		return inv, fmt.Errorf("read GPU inventory: count devices: %w", ret)
	}
	for i := range count {
		if err := ctx.Err(); err != nil {
			return inv, fmt.Errorf("read GPU inventory: %w", err)
		}
		g, err := n.readGPU(i)
		if err != nil {
			n.log.Warn("GPU left out of the inventory", "index", i, "err", err)
			continue
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	if len(inv.GPUs) == 0 {
		n.log.Info("no GPUs: NVML lists none")
	}
	return inv, nil
}

func (n *NVML) readGPU(i int) (GPU, error) {
	dev, ret := call(func() (nvml.Device, nvml.Return) { return n.lib.DeviceGetHandleByIndex(i) })
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("get handle: %w", ret)
	}
	g := GPU{Index: i}
	if g.UUID, ret = call(dev.GetUUID); ret != nvml.SUCCESS {
		return g, fmt.Errorf("read UUID: %w", ret)
	}
	if g.Minor, ret = call(dev.GetMinorNumber); ret != nvml.SUCCESS {
		return g, fmt.Errorf("read minor number of %s: %w", g.UUID, ret)
	}
	if idx, ret := call(dev.GetIndex); ret == nvml.SUCCESS {
		g.Index = idx
	}
	g.Name, _ = call(dev.GetName)
	if mem, ret := call(dev.GetMemoryInfo); ret == nvml.SUCCESS {
		g.MemoryBytes = mem.Total
	}
	current, _, ret := call2(dev.GetMigMode)
	g.MIG = ret == nvml.SUCCESS && current == nvml.DEVICE_MIG_ENABLE
	if g.MIG {
		g.MIGDevices = n.readMIG(dev, g)
		if len(g.MIGDevices) == 0 {
			n.log.Info("GPU is in MIG mode but has no MIG devices; it offers none until instances are created (nvidia-smi mig -cgi <profiles> -C)",
				"index", g.Index, "uuid", g.UUID)
		}
	}
	return g, nil
}

// readMIG lists the MIG devices of a GPU in MIG mode: every compute instance of every GPU
// instance, with its UUID (from the MIG device handles) and its access capabilities (from
// procfs). A MIG device that lacks either is left out with a warning: it could not be
// named in CUDA_VISIBLE_DEVICES, or not opened under DevicePolicy=closed.
func (n *NVML) readMIG(dev nvml.Device, g GPU) []MIGDevice {
	type key struct{ gi, ci int }
	uuids := map[key]string{}
	maxMIG, ret := call(dev.GetMaxMigDeviceCount)
	if ret != nvml.SUCCESS {
		n.log.Warn("cannot list MIG devices", "gpu", g.Index, "err", ret)
	}
	for i := range maxMIG {
		m, ret := call(func() (nvml.Device, nvml.Return) { return dev.GetMigDeviceHandleByIndex(i) })
		if ret != nvml.SUCCESS { // ERROR_NOT_FOUND: an empty slot
			continue
		}
		gi, ret1 := call(m.GetGpuInstanceId)
		ci, ret2 := call(m.GetComputeInstanceId)
		uuid, ret3 := call(m.GetUUID)
		if ret1 == nvml.SUCCESS && ret2 == nvml.SUCCESS && ret3 == nvml.SUCCESS {
			uuids[key{gi, ci}] = uuid
		}
	}

	var out []MIGDevice
	for giProfile := range nvml.GPU_INSTANCE_PROFILE_COUNT {
		gip, ret := call(func() (nvml.GpuInstanceProfileInfo, nvml.Return) { return dev.GetGpuInstanceProfileInfo(giProfile) })
		if ret != nvml.SUCCESS {
			continue // this GPU has no such profile
		}
		gis, ret := call(func() ([]nvml.GpuInstance, nvml.Return) { return dev.GetGpuInstances(&gip) })
		if ret != nvml.SUCCESS {
			continue
		}
		for _, gi := range gis {
			giInfo, ret := call(gi.GetInfo)
			if ret != nvml.SUCCESS {
				continue
			}
			for ciProfile := range nvml.COMPUTE_INSTANCE_PROFILE_COUNT {
				cip, ret := call(func() (nvml.ComputeInstanceProfileInfo, nvml.Return) {
					return gi.GetComputeInstanceProfileInfo(ciProfile, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
				})
				if ret != nvml.SUCCESS {
					continue
				}
				cis, ret := call(func() ([]nvml.ComputeInstance, nvml.Return) { return gi.GetComputeInstances(&cip) })
				if ret != nvml.SUCCESS {
					continue
				}
				for _, ci := range cis {
					ciInfo, ret := call(ci.GetInfo)
					if ret != nvml.SUCCESS {
						continue
					}
					m := MIGDevice{
						Profile:         profileName(gip, cip, g.MemoryBytes),
						GPUInstance:     int(giInfo.Id),
						ComputeInstance: int(ciInfo.Id),
						MemoryBytes:     gip.MemorySizeMB << 20,
					}
					where := fmt.Sprintf("gpu%d/gi%d/ci%d", g.Minor, m.GPUInstance, m.ComputeInstance)
					m.UUID = uuids[key{m.GPUInstance, m.ComputeInstance}]
					if m.UUID == "" {
						n.log.Warn("MIG device left out: NVML gives it no UUID", "gpu", g.Index, "mig", where, "profile", m.Profile)
						continue
					}
					caps, err := n.migCaps(g.Minor, m.GPUInstance, m.ComputeInstance)
					if err != nil {
						n.log.Warn("MIG device left out: its access capabilities cannot be read", "gpu", g.Index, "mig", where, "err", err)
						continue
					}
					m.CapNodes = caps
					out = append(out, m)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b MIGDevice) int {
		return cmp.Or(cmp.Compare(a.GPUInstance, b.GPUInstance), cmp.Compare(a.ComputeInstance, b.ComputeInstance))
	})
	return out
}

// migCaps returns the /dev/nvidia-caps nodes that grant access to a GPU instance and one of
// its compute instances. The driver publishes their minors in
// <proc>/driver/nvidia/capabilities/gpu<minor>/mig/gi<gi>/access and …/gi<gi>/ci<ci>/access
// ("DeviceFileMinor: 12"). The mig/config and mig/monitor capabilities (nvidia-cap1 and 2)
// are for creating instances and watching all of them; running on one needs neither.
func (n *NVML) migCaps(gpuMinor, gi, ci int) ([]string, error) {
	dir := filepath.Join(n.procRoot, "driver", "nvidia", "capabilities", fmt.Sprintf("gpu%d", gpuMinor), "mig", fmt.Sprintf("gi%d", gi))
	giMinor, err := capMinor(filepath.Join(dir, "access"))
	if err != nil {
		return nil, err
	}
	ciMinor, err := capMinor(filepath.Join(dir, fmt.Sprintf("ci%d", ci), "access"))
	if err != nil {
		return nil, err
	}
	return []string{capNode(giMinor), capNode(ciMinor)}, nil
}

func capNode(minor int) string { return fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", minor) }

// capMinor reads DeviceFileMinor from a capability's access file.
func capMinor(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == "DeviceFileMinor" {
			minor, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("%s: DeviceFileMinor %q is not a number", path, strings.TrimSpace(v))
			}
			return minor, nil
		}
	}
	if err := s.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return 0, fmt.Errorf("%s has no DeviceFileMinor line", path)
}

// profileName is NVIDIA's name for a MIG device: "<g>g.<gb>gb", with "<c>c." in front when
// the compute instance is smaller than its GPU instance, and the media-engine suffix of
// the profile variants ("1g.10gb+me"). The memory is the GPU instance's share of the card,
// rounded up to an eighth and scaled to the card's size in whole GB, as nvidia-smi names it
// (so 4864 MiB on a 40 GB A100 is "5gb").
func profileName(gi nvml.GpuInstanceProfileInfo, ci nvml.ComputeInstanceProfileInfo, gpuMemoryBytes uint64) string {
	gb := uint64(0)
	if gpuMemoryBytes > 0 {
		share := float64(gi.MemorySizeMB<<20) / float64(gpuMemoryBytes)
		share = math.Ceil(share*8) / 8
		cardGB := float64((gpuMemoryBytes + 1<<30 - 1) >> 30)
		gb = uint64(math.Round(share * cardGB))
	} else {
		gb = (gi.MemorySizeMB + 1023) / 1024
	}
	name := fmt.Sprintf("%dg.%dgb", gi.SliceCount, gb)
	if ci.SliceCount != 0 && ci.SliceCount < gi.SliceCount {
		name = fmt.Sprintf("%dc.%s", ci.SliceCount, name)
	}
	switch gi.Id {
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, nvml.GPU_INSTANCE_PROFILE_2_SLICE_REV1:
		name += "+me"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME, nvml.GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME:
		name += "+me.all"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_NO_ME, nvml.GPU_INSTANCE_PROFILE_2_SLICE_NO_ME:
		name += "-me"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_GFX, nvml.GPU_INSTANCE_PROFILE_2_SLICE_GFX,
		nvml.GPU_INSTANCE_PROFILE_3_SLICE_GFX, nvml.GPU_INSTANCE_PROFILE_4_SLICE_GFX:
		name += "+gfx"
	}
	return name
}

// Sample is a device's live counters.
type Sample struct {
	MemoryUsedBytes  uint64
	MemoryTotalBytes uint64
	// UtilizationPercent is the share of the last sample period the GPU was busy. NVML does
	// not report it for MIG devices; there it is 0.
	UtilizationPercent int
}

// Sample reads a device's counters. What NVML cannot tell (no driver, a MIG device's
// utilisation, a counter the card lacks) reads as zero: metrics should not fail because
// one counter is missing.
func (n *NVML) Sample(d Device) Sample {
	n.mu.Lock()
	defer n.mu.Unlock()
	var s Sample
	if !n.loaded {
		return s
	}
	dev, ret := call(func() (nvml.Device, nvml.Return) { return n.lib.DeviceGetHandleByUUID(d.UUID) })
	if ret != nvml.SUCCESS {
		return s
	}
	if mem, ret := call(dev.GetMemoryInfo); ret == nvml.SUCCESS {
		s.MemoryUsedBytes, s.MemoryTotalBytes = mem.Used, mem.Total
	}
	if u, ret := call(dev.GetUtilizationRates); ret == nvml.SUCCESS {
		s.UtilizationPercent = int(u.Gpu)
	}
	return s
}

// call makes one NVML query. go-nvml's generated mocks panic on a method they have no
// implementation for, where a real driver answers ERROR_NOT_SUPPORTED or
// ERROR_FUNCTION_NOT_FOUND; either way the answer is "not available", so a panic becomes
// ERROR_FUNCTION_NOT_FOUND here instead of taking the hub down.
func call[T any](f func() (T, nvml.Return)) (v T, ret nvml.Return) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, ret = zero, nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return f()
}

// call2 is call for the queries that answer two values.
func call2[T, U any](f func() (T, U, nvml.Return)) (t T, u U, ret nvml.Return) {
	defer func() {
		if r := recover(); r != nil {
			var zt T
			var zu U
			t, u, ret = zt, zu, nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return f()
}

// guard is call for the queries that answer only a Return.
func guard(f func() nvml.Return) (ret nvml.Return) {
	defer func() {
		if r := recover(); r != nil {
			ret = nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return f()
}
