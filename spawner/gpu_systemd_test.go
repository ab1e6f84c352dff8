package spawner

// TestSystemdGPUDevices drives the gpu step and the unit step together against the real systemd
// and kernel (the test VM; see systemd_test.go): fake NVIDIA device nodes with NVIDIA's real
// major number, so that the device cgroup decides on them as it would on a GPU host.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

// nvidiaMajor is the character device major of /dev/nvidia<N> and /dev/nvidiactl.
const nvidiaMajor = 195

// fakeNVIDIANodes makes /dev/nvidia2, /dev/nvidia3 and /dev/nvidiactl as the driver would
// (char 195:N, mode 0666) and removes them after the test. No driver owns the numbers, so an
// open that the device cgroup lets through fails with ENXIO; one it stops fails with EPERM.
// A host with real NVIDIA nodes is left alone.
func fakeNVIDIANodes(t *testing.T) {
	t.Helper()
	nodes := map[string]int{"/dev/nvidia2": 2, "/dev/nvidia3": 3, "/dev/nvidiactl": 255}
	for path := range nodes {
		if _, err := os.Lstat(path); err == nil {
			t.Skipf("%s exists: this host has NVIDIA devices; not touching them", path)
		}
	}
	for path, minor := range nodes {
		if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, int(mkdev(nvidiaMajor, minor))); err != nil {
			t.Fatalf("mknod %s: %v", path, err)
		}
		t.Cleanup(func() { os.Remove(path) })
		if err := os.Chmod(path, 0o666); err != nil { // past the umask, as the driver's nodes are
			t.Fatal(err)
		}
	}
}

func mkdev(major, minor int) uint64 {
	return uint64(major)<<8 | uint64(minor&0xff) | uint64(minor&^0xff)<<12
}

// probe is the server's command: it opens each node read-write and prints what happened, and
// prints CUDA_VISIBLE_DEVICES, each line tagged with the unit's token.
const probe = `import errno, os, sys
tag = sys.argv[1]
for p in sys.argv[2:]:
    try:
        os.close(os.open(p, os.O_RDWR))
        r = "OPENED"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    print(tag, p, r)
print(tag, "CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", "-"))
print(tag, "done", flush=True)
`

func TestSystemdGPUDevices(t *testing.T) {
	m, _ := systemdManager(t)
	ensureUser(t, testUser)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 for the probe")
	}
	fakeNVIDIANodes(t)
	ctx := testCtx(t, 3*time.Minute)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// One fake GPU whose device node is /dev/nvidia2, as NVML would report it.
	lib := dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB)
	dev := lib.Devices[0].(*server.Device)
	dev.Minor = 2
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	alloc, err := gpu.NewAllocator(ctx, gpu.AllocatorOptions{
		Config: gpu.Config{Enabled: true, DefaultQuota: 1},
		NVML:   gpu.OpenNVML(gpu.NVMLOptions{Library: lib, Logger: quiet}),
		Ledger: gpu.StoreLedger(st), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	owner, err := st.CreateUser(ctx, testUser, false)
	if errors.Is(err, store.ErrExists) {
		owner, err = st.GetUser(ctx, testUser)
	}
	if err != nil {
		t.Fatal(err)
	}

	nodes := []string{"/dev/nvidia2", "/dev/nvidia3", "/dev/nvidiactl"}
	// spawn runs the hub's pipeline for one server of testUser: the gpu step, then the unit
	// step, as agent/wire.go lists them; closed is spawner.StepOptions.CloseDevices (set on
	// GPU hosts). It returns what the probe saw: node (or CUDA_VISIBLE_DEVICES) → result.
	spawn := func(name, userOptions string, closed bool) map[string]string {
		t.Helper()
		sv, err := st.Server(ctx, owner.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		sv.Unit, sv.Port, sv.UserOptions = UnitName("jupyter", testUser, name), 50000, json.RawMessage(userOptions)
		token := fmt.Sprintf("jhgo-gpu-%s-%d", name, time.Now().UnixNano())
		gpuStep := gpu.NewStep(alloc, quiet)
		unitStep := NewStep(m, StepOptions{
			Cmd:  append([]string{"/usr/bin/python3", "-c", probe, token}, nodes...),
			Path: "/usr/bin:/bin",
			// The sandbox a hub's units get by default (agent/config), so the devices are
			// checked as they are in production.
			Sandbox:      Sandbox{PrivateTmp: true, NoNewPrivileges: true, ProtectSystem: "full", UMask: "0077"},
			PrivateHomes: true,
			CloseDevices: closed,
		})
		stopAfter(t, m, sv.Unit)
		t.Cleanup(func() { gpuStep.Stop(context.Background(), sv) })
		job := servers.NewJob(owner, sv)
		for _, step := range []servers.Step{gpuStep, unitStep} {
			if err := step.Start(ctx, job); err != nil {
				t.Fatalf("%s: %s step: %v", name, step.Name(), err)
			}
		}
		t.Logf("%s: DeviceAllow %q, CUDA_VISIBLE_DEVICES %q", name, job.DeviceAllow, job.Env["CUDA_VISIBLE_DEVICES"])
		for {
			lines, err := m.Journal(ctx, sv.Unit, 50, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]string{}
			for _, l := range lines {
				f := strings.Fields(l)
				if len(f) == 3 && f[0] == token {
					seen[f[1]] = f[2]
				}
				if len(f) == 2 && f[0] == token && f[1] == "done" {
					t.Logf("%s: the probe saw %v", name, seen)
					return seen
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: the probe never finished; journal:\n%s", name, strings.Join(lines, "\n"))
			case <-time.After(300 * time.Millisecond):
			}
		}
	}

	uuid, _ := dev.GetUUID()
	// Granted GPU 0 (/dev/nvidia2): its node and the driver's control node get past the device
	// cgroup (no driver answers: ENXIO); the other GPU's node does not.
	got := spawn("granted", `{"gpus": 1}`, true)
	for node, want := range map[string]string{"/dev/nvidia2": "ENXIO", "/dev/nvidia3": "EPERM", "/dev/nvidiactl": "ENXIO", "CUDA_VISIBLE_DEVICES": uuid} {
		if got[node] != want && !(want == "ENXIO" && got[node] == "ENODEV") {
			t.Errorf("granted unit: %s = %q, want %s", node, got[node], want)
		}
	}
	if g, ok := alloc.Grant(mustServerID(t, st, owner.ID, "granted")); !ok || len(g.Devices) != 1 || g.Devices[0].UUID != uuid {
		t.Errorf("the allocator's grant: %+v (%v)", g, ok)
	}

	// No grant on a GPU host: DevicePolicy=closed alone keeps every NVIDIA node shut.
	got = spawn("nogrant", `{}`, true)
	for _, node := range nodes {
		if got[node] != "EPERM" {
			t.Errorf("unit without a grant: %s = %q, want EPERM", node, got[node])
		}
	}
	if got["CUDA_VISIBLE_DEVICES"] != "-" {
		t.Errorf("unit without a grant has CUDA_VISIBLE_DEVICES=%s", got["CUDA_VISIBLE_DEVICES"])
	}

	// The control: without CloseDevices (a host without GPUs) nothing stops the opens, which
	// is why a GPU host must close every unit.
	got = spawn("open", `{}`, false)
	for _, node := range nodes {
		if got[node] != "ENXIO" && got[node] != "ENODEV" {
			t.Errorf("unit with systemd's default device policy: %s = %q, want ENXIO (past the cgroup)", node, got[node])
		}
	}
}

func mustServerID(t *testing.T, st *store.Store, userID int64, name string) int64 {
	t.Helper()
	sv, err := st.Server(context.Background(), userID, name)
	if err != nil {
		t.Fatal(err)
	}
	return sv.ID
}
