package agent

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
	"github.com/jupyterhub-go/jupyterhub-go/spawner"
)

// The gpu step comes before the unit, and on a host with GPUs every unit is closed to devices
// it was not granted; on a host without, the units keep systemd's default.
func TestSpawnStepsOnHostsWithAndWithoutGPUs(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	for name, c := range map[string]struct {
		nv    *gpu.NVML
		close bool
	}{
		"eight A100s": {gpu.OpenNVML(gpu.NVMLOptions{Library: dgxa100.New(), Logger: log}), true},
		"no driver":   {gpu.OpenNVML(gpu.NVMLOptions{LibraryPath: "/nonexistent/libnvidia-ml.so.1", Logger: log}), false},
		"gpu off":     {nil, false},
	} {
		alloc, err := NewAllocator(context.Background(), cfg, st, c.nv, log)
		if err != nil {
			t.Fatal(err)
		}
		steps := spawnSteps(cfg, nil, alloc, nil, log)
		var names []string
		for _, s := range steps {
			names = append(names, s.Name())
		}
		if !reflect.DeepEqual(names, []string{"gpu", "unit"}) {
			t.Errorf("%s: steps %q, want gpu before the unit", name, names)
		}
		if got := steps[len(steps)-1].(spawner.Step).Opts.CloseDevices; got != c.close {
			t.Errorf("%s: units closed to devices = %v, want %v", name, got, c.close)
		}
	}
}

// The [gpu] section reaches the allocator as the gpu package's own defaults would have it.
func TestGPUConfigTranslates(t *testing.T) {
	got := gpuConfig(config.Default().GPU)
	if !reflect.DeepEqual(got, gpu.DefaultConfig()) {
		t.Errorf("default [gpu] = %+v, gpu.DefaultConfig() = %+v", got, gpu.DefaultConfig())
	}
	c := config.GPU{Enabled: true, Queue: true, Quota: map[string]int{"staff": 4}, DefaultQuota: 0}
	if got := gpuConfig(c); !reflect.DeepEqual(got, gpu.Config{Enabled: true, Queue: true, Quota: map[string]int{"staff": 4}}) {
		t.Errorf("translated %+v", got)
	}
}
