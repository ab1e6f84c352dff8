package gpu

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestUnitForWholeGPUsAllowsTheirNodesAndNamesThemByUUID(t *testing.T) {
	a := newAllocator(t, generous, newDGXA100(), newLedger())
	mustAcquire(t, a, holder(1, "alice"), Request{GPUs: 2})
	g := mustAcquire(t, a, holder(2, "bob"), Request{GPUs: 2})
	u := g.Unit()

	want := []string{"/dev/nvidia-uvm rw", "/dev/nvidia-uvm-tools rw", "/dev/nvidia2 rw", "/dev/nvidia3 rw", "/dev/nvidiactl rw"}
	if !slices.Equal(u.DeviceAllow, want) {
		t.Errorf("DeviceAllow %v\nwant        %v", u.DeviceAllow, want)
	}
	visible := strings.Join(uuids(g.Devices), ",")
	wantEnv := map[string]string{"CUDA_VISIBLE_DEVICES": visible, "NVIDIA_VISIBLE_DEVICES": visible, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
	if !maps.Equal(u.Env, wantEnv) {
		t.Errorf("Env %v\nwant %v", u.Env, wantEnv)
	}
	if !strings.HasPrefix(visible, "GPU-") {
		t.Errorf("devices named %q, want UUIDs", visible)
	}
}

func TestUnitForAMIGDeviceAllowsItsParentAndItsTwoCapabilities(t *testing.T) {
	a := newAllocator(t, generous, newDGXH100MIG(t), newLedger())
	g := mustAcquire(t, a, holder(1, "alice"), Request{MIGProfile: "4g.40gb"})
	u := g.Unit()

	want := []string{
		"/dev/nvidia-caps/nvidia-cap147 rw", "/dev/nvidia-caps/nvidia-cap148 rw",
		"/dev/nvidia-uvm rw", "/dev/nvidia-uvm-tools rw", "/dev/nvidia1 rw", "/dev/nvidiactl rw",
	}
	if !slices.Equal(u.DeviceAllow, want) {
		t.Errorf("DeviceAllow %v\nwant        %v", u.DeviceAllow, want)
	}
	for _, d := range u.DeviceAllow {
		if strings.HasPrefix(d, "/dev/nvidia-caps/nvidia-cap1 ") || strings.HasPrefix(d, "/dev/nvidia-caps/nvidia-cap2 ") {
			t.Errorf("a user server may not configure or monitor MIG: %s", d)
		}
	}
	mig := g.Devices[0].UUID
	if !strings.HasPrefix(mig, "MIG-") || u.Env["CUDA_VISIBLE_DEVICES"] != mig || u.Env["NVIDIA_VISIBLE_DEVICES"] != mig {
		t.Errorf("env %v, want the MIG UUID %s", u.Env, mig)
	}
}

func TestUnitForAServerWithoutGPUsIsEmpty(t *testing.T) {
	u := Grant{Holder: holder(1, "alice")}.Unit()
	if u.DeviceAllow != nil || u.Env != nil {
		t.Errorf("%+v", u)
	}
}
