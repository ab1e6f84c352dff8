package gpu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Step is the spawn step ("gpu") that gives a server the GPUs it asks for. It runs before the
// unit: its start half acquires the devices (in queue mode waiting in line, with the position
// on the progress stream and spawner.start_timeout standing still meanwhile) and hands the
// unit their device nodes (Job.DeviceAllow) and CUDA_VISIBLE_DEVICES (Job.Env); its stop half
// gives them back. A server that asks for nothing passes through untouched.
type Step struct {
	alloc *Allocator
	log   *slog.Logger
}

// NewStep makes the gpu step over the hub's allocator.
func NewStep(alloc *Allocator, log *slog.Logger) Step {
	if log == nil {
		log = slog.Default()
	}
	return Step{alloc: alloc, log: log}
}

func (Step) Name() string { return "gpu" }

// progressPercent is where the gpu step sits in the spawn's progress: after the credentials
// (10), before the unit (30).
const progressPercent = 20

func (s Step) Start(ctx context.Context, job *servers.Job) error {
	req, err := requestFrom(job.UserOptions) // the user's, or a profile's (Job.UserOptions)
	if err != nil {
		return err
	}
	if req.IsZero() {
		return nil
	}
	req.Groups = job.User.Groups
	holder := Holder{ServerID: job.Server.ID, User: job.Server.UserName, Server: job.Server.Name}
	var leftQueue func()
	grant, err := s.alloc.Acquire(ctx, holder, req, func(pos int) {
		if leftQueue == nil {
			leftQueue = job.Queued() // the time in line is not the spawn's to answer for
		}
		job.Progress(progressPercent, WaitingMessage(pos))
	})
	if leftQueue != nil {
		leftQueue()
	}
	if err != nil {
		var busy *BusyError
		if errors.As(err, &busy) {
			// The user reads how many are free; who holds them is for the admin's log.
			s.log.Info("GPU request refused: nothing free", "server", holder, "request", req.String(), "held", busy.Detail)
		}
		return err
	}
	unit := grant.Unit()
	maps.Copy(job.Env, unit.Env)
	job.DeviceAllow = append(job.DeviceAllow, unit.DeviceAllow...)
	job.Progress(progressPercent, "Got "+describe(grant.Devices))
	return nil
}

func (s Step) Stop(ctx context.Context, sv store.Server) error {
	return s.alloc.Release(ctx, sv.ID)
}

// describe is "GPU 0 (NVIDIA A100-SXM4-40GB)" for the progress stream.
func describe(devs []Device) string {
	parts := make([]string, len(devs))
	for i, d := range devs {
		parts[i] = d.String()
		if d.Name != "" {
			parts[i] += " (" + d.Name + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// requestFrom reads what a server asks for from its user_options: {"gpus": N} for N whole GPUs,
// {"mig_profile": "1g.10gb"} for one MIG device, neither (or 0, or "") for none. Other keys
// belong to others and are left alone. This is the one place that reads the request; a profile's
// (agent/profiles) arrives here in the same shape, through Job.UserOptions.
func requestFrom(opts json.RawMessage) (Request, error) {
	if len(bytes.TrimSpace(opts)) == 0 {
		return Request{}, nil
	}
	var o struct {
		GPUs       json.RawMessage `json:"gpus"`
		MIGProfile json.RawMessage `json:"mig_profile"`
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		return Request{}, fmt.Errorf("user_options must be a JSON object, such as {\"gpus\": 1}: %w", err)
	}
	var req Request
	if len(o.GPUs) > 0 && string(o.GPUs) != "null" {
		// A number, or a number in a string as HTML forms send it.
		raw := string(o.GPUs)
		if s, err := strconv.Unquote(raw); err == nil {
			raw = strings.TrimSpace(s)
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return Request{}, fmt.Errorf("user_options.gpus = %s: ask for a whole number of GPUs, 0 or more, e.g. {\"gpus\": 1}", o.GPUs)
		}
		req.GPUs = n
	}
	if len(o.MIGProfile) > 0 && string(o.MIGProfile) != "null" {
		if err := json.Unmarshal(o.MIGProfile, &req.MIGProfile); err != nil {
			return Request{}, fmt.Errorf("user_options.mig_profile = %s: name a MIG profile as a string, e.g. {\"mig_profile\": \"1g.10gb\"}", o.MIGProfile)
		}
		req.MIGProfile = normalizeProfile(req.MIGProfile)
	}
	if req.GPUs > 0 && req.MIGProfile != "" {
		return Request{}, fmt.Errorf("user_options asks for %s and for a MIG %s device: ask for whole GPUs (gpus) or one MIG device (mig_profile), not both", plural(req.GPUs, "GPU"), req.MIGProfile)
	}
	return req, nil
}
