package spawner

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// StepOptions is how each server's unit is built (the [spawner] section of the hub's config).
type StepOptions struct {
	Cmd        []string
	Args       []string
	Env        map[string]string // set last: overrides what other steps put in the environment
	EnvKeep    []string          // copied from the hub's own environment, as JupyterHub's env_keep
	Path       string
	WorkingDir string // "" is the user's home; {USERNAME} is expanded
	MemoryMax  uint64
	CPUQuota   float64
	TasksMax   uint64
	Slice      string
	Sandbox    Sandbox
	// PrivateHomes hides every home but the user's own from their server (Sandbox.PrivateHome).
	PrivateHomes bool
	// MinUID keeps servers of system accounts from starting; root is refused whatever it says.
	MinUID int
	// CloseDevices gives every unit DevicePolicy=closed, so a server opens only the standard
	// pseudo devices and what the job's DeviceAllow lists. The wiring sets it on hosts with
	// GPUs: the NVIDIA device nodes are mode 0666, so without it a server that was granted no
	// GPU (or a different one) could open them all.
	CloseDevices bool
}

// Step is the spawn step that runs the server itself: a transient unit as the user, built the way
// JupyterHub's Spawner.get_env and systemdspawner would. It is the last step; the hub then waits
// for the server to answer HTTP.
type Step struct {
	Units *Manager
	Opts  StepOptions
}

// NewStep makes the unit step.
func NewStep(units *Manager, opts StepOptions) Step { return Step{Units: units, Opts: opts} }

func (Step) Name() string { return "unit" }

func (s Step) Start(ctx context.Context, job *servers.Job) error {
	spec, err := s.spec(job)
	if err != nil {
		return err
	}
	// The stream is for the user: plain words. Unit and port are in the hub's log.
	job.Progress(30, "Starting your server")
	if err := s.Units.Start(ctx, spec); err != nil {
		return err
	}
	job.Progress(50, "Waiting for Jupyter to start")
	return nil
}

func (s Step) Stop(ctx context.Context, sv store.Server) error {
	if sv.Unit == "" {
		return nil
	}
	if err := s.Units.Stop(ctx, sv.Unit); err != nil {
		return fmt.Errorf("stop unit %s: %w", sv.Unit, err)
	}
	return nil
}

// spec builds the unit: the account's home and a login-like environment, the limits and
// sandboxing from the options, and whatever the earlier steps put into job.Env.
func (s Step) spec(job *servers.Job) (Spec, error) {
	o, sv := s.Opts, job.Server
	acct, err := user.Lookup(sv.UserName)
	if err != nil {
		return Spec{}, fmt.Errorf("user %s has no Unix account on this host: %w", sv.UserName, err)
	}
	// Login checks min_uid too, but an admin can create any user through the API and start their
	// server: the unit is where it must hold.
	uid, err := strconv.Atoi(acct.Uid)
	if err != nil || uid == 0 {
		return Spec{}, fmt.Errorf("refusing to start a server as %s (uid %s): servers never run as root", sv.UserName, acct.Uid)
	}
	if uid < o.MinUID {
		return Spec{}, fmt.Errorf("refusing to start a server as %s: uid %d is a system account (below auth.pam.min_uid %d)", sv.UserName, uid, o.MinUID)
	}
	env := map[string]string{}
	for _, k := range o.EnvKeep {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	env["HOME"] = acct.HomeDir
	env["USER"] = sv.UserName
	env["SHELL"] = "/bin/bash"
	env["PATH"] = o.Path
	// A step before (a profile) may override the command, the limits and the environment.
	over := job.Unit
	cmd, memoryMax, cpuQuota, tasksMax := o.Cmd, o.MemoryMax, o.CPUQuota, o.TasksMax
	if len(over.Cmd) > 0 {
		cmd = over.Cmd
	}
	if over.MemoryMax > 0 {
		memoryMax = over.MemoryMax
	}
	if over.CPUQuota > 0 {
		cpuQuota = over.CPUQuota
	}
	if over.TasksMax > 0 {
		tasksMax = over.TasksMax
	}
	if memoryMax > 0 {
		env["MEM_LIMIT"] = strconv.FormatUint(memoryMax, 10)
	}
	if cpuQuota > 0 {
		env["CPU_LIMIT"] = strconv.FormatFloat(cpuQuota/100, 'f', -1, 64)
	}
	for k, v := range job.Env {
		env[k] = v
	}
	for k, v := range o.Env {
		env[k] = v
	}
	for k, v := range over.Env {
		env[k] = v
	}
	sandbox := o.Sandbox
	if o.PrivateHomes {
		sandbox.PrivateHome = acct.HomeDir
	}
	policy := ""
	if o.CloseDevices {
		policy = "closed"
	}
	wd := acct.HomeDir
	if o.WorkingDir != "" {
		wd = strings.ReplaceAll(o.WorkingDir, "{USERNAME}", sv.UserName)
	}
	return Spec{
		Unit:             sv.Unit,
		Description:      fmt.Sprintf("Jupyter server for %s at %s", sv.UserName, job.Env["JUPYTERHUB_SERVICE_PREFIX"]),
		User:             sv.UserName,
		WorkingDirectory: wd,
		Command:          append(append([]string{}, cmd...), o.Args...),
		Env:              env,
		MemoryMax:        memoryMax,
		CPUQuota:         cpuQuota,
		TasksMax:         tasksMax,
		Slice:            o.Slice,
		Sandbox:          sandbox,
		DeviceAllow:      slices.Clone(job.DeviceAllow),
		DevicePolicy:     policy,
		// Steps before this one mounted these (the NFS home); systemd orders the server after them.
		RequiresMountsFor: append([]string(nil), job.RequiresMounts...),
	}, nil
}
