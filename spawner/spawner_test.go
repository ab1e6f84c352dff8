package spawner

import (
	"fmt"
	"math"
	"testing"
)

func TestUnitProperties(t *testing.T) {
	spec := Spec{
		Unit: "jupyter-alice.service", User: "alice", Command: []string{"/bin/true"},
		MemoryMax: 1 << 30, CPUQuota: 12.5, TasksMax: 100, Slice: "jupyterhub.slice",
		Sandbox:           Sandbox{PrivateTmp: true, ProtectSystem: "strict", PrivateHome: "/home/alice", UMask: "0077"},
		DeviceAllow:       []string{"/dev/nvidia0 rw", "/dev/nvidiactl"},
		RequiresMountsFor: []string{"/home/alice"},
	}
	props, err := unitProperties(spec)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range props {
		got[p.Name] = fmt.Sprint(p.Value.Value())
	}
	for k, want := range map[string]string{
		"Type":               "exec",
		"User":               "alice",
		"WorkingDirectory":   "~",
		"Description":        "Jupyter server for alice",
		"MemoryMax":          "1073741824",
		"CPUQuotaPerSecUSec": "125000",
		"TasksMax":           "100",
		"Slice":              "jupyterhub.slice",
		"PrivateTmp":         "true",
		"ProtectSystem":      "strict",
		"CollectMode":        "inactive-or-failed",
		"DevicePolicy":       "closed",
		"DeviceAllow":        "[{/dev/nvidia0 rw} {/dev/nvidiactl rwm}]",
		"ProtectHome":        "tmpfs",
		"BindPaths":          "[{/home/alice /home/alice false 16384}]",
		"UMask":              "63",
		"RequiresMountsFor":  "[/home/alice]",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	for _, k := range []string{"Group", "NoNewPrivileges"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s set although not asked for", k)
		}
	}
	// Resource properties are left out entirely when zero, so systemd's
	// defaults apply.
	props, _ = unitProperties(Spec{Unit: "jupyter-a.service", User: "a", Command: []string{"/bin/true"}})
	for _, p := range props {
		switch p.Name {
		case "MemoryMax", "CPUQuotaPerSecUSec", "TasksMax", "Slice", "DevicePolicy", "DeviceAllow", "ProtectHome", "BindPaths", "UMask", "RequiresMountsFor":
			t.Errorf("%s set for a zero Spec", p.Name)
		}
	}
}

// A GPU host closes every unit's devices, granted GPUs or not; DevicePolicy alone does that.
func TestDevicePolicyWithoutDeviceAllow(t *testing.T) {
	props, err := unitProperties(Spec{Unit: "jupyter-a.service", User: "a", Command: []string{"/bin/true"}, DevicePolicy: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range props {
		got[p.Name] = fmt.Sprint(p.Value.Value())
	}
	if got["DevicePolicy"] != "closed" {
		t.Errorf("DevicePolicy = %q, want closed", got["DevicePolicy"])
	}
	if _, ok := got["DeviceAllow"]; ok {
		t.Errorf("DeviceAllow = %s set although nothing was granted", got["DeviceAllow"])
	}
}

func TestUnitPropertiesRejects(t *testing.T) {
	ok := Spec{Unit: "jupyter-a.service", User: "a", Command: []string{"/bin/true"}}
	for name, mod := range map[string]func(*Spec){
		"no user":        func(s *Spec) { s.User = "" },
		"no command":     func(s *Spec) { s.Command = nil },
		"empty argv0":    func(s *Spec) { s.Command = []string{""} },
		"not service":    func(s *Spec) { s.Unit = "jupyter-a.scope" },
		"bad unit":       func(s *Spec) { s.Unit = "jupyter a.service" },
		"glob unit":      func(s *Spec) { s.Unit = "jupyter-*.service" },
		"negative cpu":   func(s *Spec) { s.CPUQuota = -1 },
		"nan cpu":        func(s *Spec) { s.CPUQuota = math.NaN() },
		"bad device":     func(s *Spec) { s.DeviceAllow = []string{"/dev/a rw extra"} },
		"empty device":   func(s *Spec) { s.DeviceAllow = []string{" "} },
		"relative home":  func(s *Spec) { s.Sandbox.PrivateHome = "home/a" },
		"bad umask":      func(s *Spec) { s.Sandbox.UMask = "0999" },
		"bad policy":     func(s *Spec) { s.DevicePolicy = "open" },
		"wide umask":     func(s *Spec) { s.Sandbox.UMask = "7777" },
		"relative mount": func(s *Spec) { s.RequiresMountsFor = []string{"home/a"} },
	} {
		s := ok
		mod(&s)
		if _, err := unitProperties(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := unitProperties(ok); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

func TestStateRunning(t *testing.T) {
	for state, want := range map[string]bool{
		"active": true, "activating": true, "reloading": true,
		"deactivating": false, "inactive": false, "failed": false, "": false,
	} {
		if got := (State{ActiveState: state}).Running(); got != want {
			t.Errorf("Running(%q) = %v", state, got)
		}
	}
}
