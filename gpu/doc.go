// Package gpu gives user servers NVIDIA GPUs: it reads the host's GPUs through NVML, hands
// whole GPUs or MIG devices to servers under per-group quotas, and says which device nodes
// and environment a server's unit needs. It knows nothing of systemd or HTTP.
//
// # Inventory
//
// OpenNVML loads libnvidia-ml at run time. On a host without the driver it logs "no GPUs"
// and every inventory is empty, so the same hub binary runs everywhere. An Inventory lists
// each GPU (index, UUID, minor number, name, memory, MIG mode) and, for GPUs in MIG mode,
// each MIG device (MIG UUID, profile such as "1g.10gb", GPU and compute instance, and the
// /dev/nvidia-caps nodes that grant access to it, read from
// /proc/driver/nvidia/capabilities/gpu<minor>/mig/gi<gi>[/ci<ci>]/access; the /proc root is
// NVMLOptions.ProcRoot). What can be granted (Inventory.Devices) is every GPU not in MIG
// mode and every MIG device: a GPU in MIG mode is never granted whole. MIG instances are
// created by the admin (nvidia-smi mig -cgi … -C); the package never creates or destroys
// them, then re-reads them with Allocator.Refresh.
//
// # Allocation
//
// The hub's spawn pipeline uses one Allocator:
//
//	nv := gpu.OpenNVML(gpu.NVMLOptions{Logger: log})
//	alloc, err := gpu.NewAllocator(ctx, gpu.AllocatorOptions{Config: cfg.GPU, NVML: nv, Ledger: store, Logger: log})
//	// at start, once the units are listed:
//	err = alloc.Reconcile(ctx, running) // running[serverID]: its unit runs
//	// spawn step, before the unit starts:
//	grant, err := alloc.Acquire(ctx, gpu.Holder{ServerID: id, User: user, Server: name},
//		gpu.Request{GPUs: profile.GPUs, MIGProfile: profile.MIG, Groups: groups},
//		func(pos int) { progress(gpu.WaitingMessage(pos)) })
//	unit := grant.Unit() // DeviceAllow entries and environment for the unit
//	// stop step, after the unit stopped (and when a spawn fails after Acquire):
//	err = alloc.Release(ctx, id)
//
// A Request asks for N whole GPUs or for one MIG device of a profile; a zero Request gets an
// empty grant (and an empty Unit). Each device is held by one server at a time. Acquire
// records the grant in the Ledger before returning it, so a hub that dies just after
// knows what the unit holds; Release clears the record first and frees the devices after.
// NewAllocator holds the ledger's grants again at once, so nothing is handed out twice
// after a restart; Reconcile then drops the grants of servers that no longer run. The
// Ledger is the hub's store; the package only defines the interface.
//
// # Quotas
//
// Config.Quota limits how many devices (whole GPUs and MIG devices count one each) the
// members of a Unix or Keycloak group hold at once over all their servers; a user in
// several listed groups gets the largest, a user in none gets Config.DefaultQuota. A
// request over quota fails at once with *QuotaError, in queue mode too.
//
// # When nothing is free
//
// Without Config.Queue, Acquire fails at once with *BusyError: its message tells the user how
// many devices are free; its Detail field, meant for admins, says who holds the rest. With
// Config.Queue, Acquire waits in line for the pool it draws on (whole GPUs, or one MIG
// profile), first come first served, reports its position through the onQueued callback,
// and takes the devices as soon as they free. Ending the context leaves the line. The lines
// live in memory only: a hub restart fails the spawns that were waiting (their requests
// end with the hub), and their users have to start again.
//
// Requests the host can never meet (GPUs turned off, no GPUs, an unknown MIG profile, more
// GPUs than the host has) fail at once with an error matching ErrUnavailable.
//
// # Units
//
// Grant.Unit lists the device nodes the unit must be allowed to open (its GPUs'
// /dev/nvidiaN; for a MIG device, the parent's node and the device's two capability nodes;
// always /dev/nvidiactl, /dev/nvidia-uvm and /dev/nvidia-uvm-tools; never the MIG config
// and monitor capabilities) and sets CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES to the
// devices' UUIDs, with CUDA_DEVICE_ORDER=PCI_BUS_ID. The nodes only confine a unit whose
// DevicePolicy is closed: the NVIDIA nodes are usually mode 0666, so on a GPU host a server
// without a grant must run with DevicePolicy=closed too, or it can open every GPU.
//
// # The spawn step and the ledger
//
// Step is the spawn pipeline's "gpu" step (agent/wire.go lists it before the unit). Its start
// half reads the request from the server's user_options ({"gpus": N} or {"mig_profile":
// "1g.10gb"}; requestFrom is the one place that does), acquires it with the user's groups for
// the quota, puts gpu.WaitingMessage on the progress stream while it waits in line (and tells
// the core, servers.Job.Queued, so spawner.start_timeout stands still meanwhile), and hands
// the grant's Unit to the unit step: its device nodes as Job.DeviceAllow, its variables in
// Job.Env. Its stop half releases by server id, which is all a stored server record has to
// give. StoreLedger is the Ledger over the hub's sqlite store (table gpu_grants).
//
// # Usage and metrics
//
// Allocator.Usage lists every device with its holder and NVML's memory and utilisation
// counters, for metrics and the admin listing; counters NVML does not have (no driver, a
// MIG device's utilisation) read as zero. Collector exports them to Prometheus, read at
// scrape time; the hub registers it on the registry behind /hub/metrics.
//
// # Tests
//
// The tests run on NVIDIA's own NVML mocks (go-nvml's mock/dgxa100 and mock/dgxh100, MIG set
// up through the mock's MIG calls) and a testdata procfs tree; the no-driver case uses the
// real loader pointed at a missing library.
package gpu
