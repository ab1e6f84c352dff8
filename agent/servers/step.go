package servers

import (
	"context"
	"encoding/json"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Step is one stage of starting a server (see the package doc for the contract).
type Step interface {
	// Name says what the step is in logs and errors, e.g. "unit".
	Name() string
	// Start does the step's part of a spawn. Its error is shown to the user as the reason the
	// spawn failed, so it should say what went wrong in words they can act on.
	Start(ctx context.Context, job *Job) error
	// Stop undoes Start from the stored record alone; it must be idempotent.
	Stop(ctx context.Context, sv store.Server) error
}

// StepReconciler is a Step that keeps state of its own beyond one server's record, such as an NFS
// home that all of a user's servers share and that is unmounted a while after the last one stops.
// A hub that was killed forgets its timers; Reconcile calls ReconcileStep on every such step once
// the records and the units agree again (running servers adopted, the others' stops under way),
// so the step can pick up what it finds on the system. Errors are logged, not fatal.
type StepReconciler interface {
	ReconcileStep(ctx context.Context) error
}

// Job is what the steps of one spawn share.
type Job struct {
	User   store.User
	Server store.Server // Unit and Port are set before the first step runs
	// Env is the server's environment as steps contribute it; the unit step starts the server
	// with it.
	Env map[string]string
	// DeviceAllow are device nodes the server's unit may open, as systemd DeviceAllow= entries
	// ("/dev/nvidia0 rw"). They travel on the job because one step grants them (gpu) and another
	// enforces them (the unit), and neither knows the other; the core only carries them.
	DeviceAllow []string
	// RequiresMounts are paths the server needs mounted, e.g. an NFS home a step has just mounted.
	// The unit step gives them to systemd as RequiresMountsFor=, so systemd itself orders the
	// server after those mounts (and stops it should one be unmounted under it).
	RequiresMounts []string
	// UserOptions are the options the steps read (the gpu step its GPU request): the server's
	// stored user_options, as a step before may have completed them (a profile's GPU request).
	// The record keeps what the user chose.
	UserOptions json.RawMessage
	// Unit is what a step before the unit (a profile) asks of the server's unit instead of the
	// hub's [spawner] settings; the zero value keeps them all. The core only carries it.
	Unit UnitSettings

	progress *Progress
	clock    *startClock // nil in jobs made by NewJob
}

// UnitSettings override the [spawner] settings for one server's unit; a zero field keeps the
// hub's.
type UnitSettings struct {
	Cmd       []string          // replaces spawner.cmd; spawner.args still follow it
	Env       map[string]string // set after spawner.env, so that it wins over everything
	MemoryMax uint64            // bytes
	CPUQuota  float64           // percent of one CPU
	TasksMax  uint64
}

// NewJob makes a job for a step's own tests; the hub makes its jobs itself.
func NewJob(u store.User, sv store.Server) *Job {
	return &Job{User: u, Server: sv, Env: map[string]string{}, UserOptions: sv.UserOptions, progress: NewProgress()}
}

// Progress puts a step on the stream the spawn-pending page shows; percent is the whole spawn's.
func (j *Job) Progress(percent int, message string) { j.progress.Step(percent, message) }

// Queued tells the core that the step now waits in line for something other users hold (a
// GPU, say). spawner.start_timeout does not run while it waits: it bounds how long a spawn
// takes to do its work, not how long it queues. Call the returned function when the wait is
// over, whatever its outcome; the timeout then runs on with what was left of it. Calling it
// again does nothing. The spawn's context still ends if the spawn is cancelled (a stop).
func (j *Job) Queued() (done func()) {
	if j.clock == nil {
		return func() {}
	}
	return j.clock.pause()
}
