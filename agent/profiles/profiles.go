// Package profiles is [[profile]] at run time: which profiles a user is offered, what a start
// request's choice resolves to, and the spawn step that turns the chosen profile into what the
// unit is started with.
//
// A profile is chosen once, when a start is requested, and travels as data from then on:
//
//  1. The HTTP surfaces (the spawn page's options form, POST /hub/api/users/{name}/server) call
//     Set.Choose before they ask the core to start. It checks the choice (an unknown or
//     disabled profile is a 400, one the user may not use a 403, as web.StatusErrors), fills in
//     the last start's profile or the default when the request names none, and returns the
//     user_options to start with: JupyterHub's shape, {"profile": "<name>", ...}. The core
//     stores them in the server's record, so the next start can reuse the choice.
//  2. The profile step (Set.Step, right after the hub's credentials step) reads
//     user_options.profile from the job and sets what the later steps read: Job.Unit (command,
//     environment, limits), which the unit step applies over [spawner]'s settings, and the
//     GPU request in Job.UserOptions, in the shape the gpu step reads from users ({"gpus": N}
//     or {"mig_profile": "..."}). The stored record keeps what the user chose.
//
// So the lifecycle core knows nothing of profiles: it carries user_options and the job's
// fields, and the unit and gpu steps know only those fields. With no [[profile]] configured,
// Choose passes the request through and the step does nothing.
package profiles

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// Set is the configured profiles, in the order of the file.
type Set struct {
	list []config.Profile
}

// New makes the set; the profiles must have passed config validation.
func New(list []config.Profile) *Set { return &Set{list: slices.Clone(list)} }

// Configured reports whether there are profiles at all; without any, nothing changes.
func (s *Set) Configured() bool { return s != nil && len(s.list) > 0 }

// Profile is one profile as the spawn page shows it.
type Profile struct {
	Name, DisplayName, Description string
}

func view(p config.Profile) Profile {
	d := p.DisplayName
	if d == "" {
		d = p.Name
	}
	return Profile{Name: p.Name, DisplayName: d, Description: p.Description}
}

// Offered lists the enabled profiles u may use, in the order of the file.
func (s *Set) Offered(u store.User) []Profile {
	var out []Profile
	if s == nil {
		return nil
	}
	for _, p := range s.list {
		if p.Enabled && allowed(p, u) {
			out = append(out, view(p))
		}
	}
	return out
}

// allowed reports whether u may use p: everyone, unless the profile names users or groups.
// Groups are compared as the identity provider's arrive, without a leading "/".
func allowed(p config.Profile, u store.User) bool {
	if len(p.AllowedUsers) == 0 && len(p.AllowedGroups) == 0 {
		return true
	}
	if slices.Contains(p.AllowedUsers, u.Name) {
		return true
	}
	for _, g := range u.Groups {
		if slices.ContainsFunc(p.AllowedGroups, func(a string) bool { return config.OIDCGroup(a) == config.OIDCGroup(g) }) {
			return true
		}
	}
	return false
}

func (s *Set) find(name string) (config.Profile, bool) {
	i := slices.IndexFunc(s.list, func(p config.Profile) bool { return p.Name == name })
	if i < 0 {
		return config.Profile{}, false
	}
	return s.list[i], true
}

// Preselected is the profile a start that names none gets, and the one the form preselects:
// the last start's (from its stored user_options) while u may still use it, else the default
// profile, else the first offered; "" when u is offered none.
func (s *Set) Preselected(u store.User, previous json.RawMessage) string {
	offered := s.Offered(u)
	if len(offered) == 0 {
		return ""
	}
	if name, _ := profileOf(previous); name != "" && slices.ContainsFunc(offered, func(p Profile) bool { return p.Name == name }) {
		return name
	}
	for _, p := range s.list {
		if p.Default && p.Enabled && allowed(p, u) {
			return p.Name
		}
	}
	return offered[0].Name
}

// profileOf reads user_options.profile: a string, or a list of one string as JupyterHub's
// options_from_form passes form fields on.
func profileOf(opts json.RawMessage) (string, error) {
	var o map[string]json.RawMessage
	if len(strings.TrimSpace(string(opts))) == 0 || json.Unmarshal(opts, &o) != nil {
		return "", nil // not an object: the API refuses that before; nothing to choose from
	}
	raw, ok := o["profile"]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		return strings.TrimSpace(name), nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil && len(list) == 1 {
		return strings.TrimSpace(list[0]), nil
	}
	return "", fmt.Errorf("user_options.profile = %s: name one profile, e.g. {\"profile\": \"datascience\"}", raw)
}

// Choose resolves the profile of a start that u's server is asked for with requested (its
// user_options; nil for none); previous are the user_options the server last started with. It
// returns the user_options to start with, user_options.profile set, or a web.StatusError: 400
// for a profile that does not exist or is disabled, 403 for one u may not use. Without
// profiles, requested is returned as it is; so it is when u is offered none and named none.
func (s *Set) Choose(u store.User, requested, previous json.RawMessage) (json.RawMessage, error) {
	if !s.Configured() {
		return requested, nil
	}
	opts := map[string]any{}
	if len(strings.TrimSpace(string(requested))) > 0 && string(requested) != "null" {
		if err := json.Unmarshal(requested, &opts); err != nil {
			return nil, web.Errorf(http.StatusBadRequest, "user_options must be a JSON object, such as {\"profile\": \"datascience\"}")
		}
	}
	name, err := profileOf(requested)
	if err != nil {
		return nil, web.Errorf(http.StatusBadRequest, "%v", err)
	}
	if name == "" {
		if name = s.Preselected(u, previous); name == "" {
			return requested, nil
		}
	} else if err := s.check(u, name); err != nil {
		return nil, err
	}
	opts["profile"] = name
	out, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("encode user_options: %w", err)
	}
	return out, nil
}

// check says why u cannot start a server with the profile name, if they cannot.
func (s *Set) check(u store.User, name string) error {
	p, ok := s.find(name)
	switch {
	case !ok:
		return web.Errorf(http.StatusBadRequest, "there is no profile %q; %s", name, s.choices(u))
	case !p.Enabled:
		return web.Errorf(http.StatusBadRequest, "profile %q is disabled on this hub; %s", name, s.choices(u))
	case !allowed(p, u):
		return web.Errorf(http.StatusForbidden, "%s may not use profile %q (it is for some users and groups only); %s", u.Name, name, s.choices(u))
	}
	return nil
}

// choices says what u can pick instead.
func (s *Set) choices(u store.User) string {
	var names []string
	for _, p := range s.Offered(u) {
		names = append(names, fmt.Sprintf("%q", p.Name))
	}
	if len(names) == 0 {
		return "no profile is offered to " + u.Name
	}
	return "choose one of " + strings.Join(names, ", ")
}

// Step is the profile step (see the package doc).
func (s *Set) Step() servers.Step { return step{s} }

type step struct{ set *Set }

func (step) Name() string { return "profile" }

// progressPercent is where the profile step sits in the spawn's progress: after the
// credentials (10), before the gpu step (20).
const progressPercent = 15

func (st step) Start(ctx context.Context, job *servers.Job) error {
	if !st.set.Configured() {
		return nil
	}
	name, err := profileOf(job.UserOptions)
	if err != nil || name == "" {
		return err
	}
	// Choose checked the choice when the start was asked for; the configuration is the
	// same within one hub process, so this only refuses a record made by another.
	if err := st.set.check(job.User, name); err != nil {
		return err
	}
	p, _ := st.set.find(name)
	job.Unit = servers.UnitSettings{
		Cmd: slices.Clone(p.Cmd), Env: p.Env,
		MemoryMax: uint64(p.MemoryMax), CPUQuota: float64(p.CPUQuota), TasksMax: p.TasksMax,
	}
	if p.GPUs > 0 || p.MIGProfile != "" {
		if job.UserOptions, err = withGPURequest(job.UserOptions, p); err != nil {
			return err
		}
	}
	job.Progress(progressPercent, "Using the profile "+view(p).DisplayName)
	return nil
}

// Stop has nothing to undo: the step only sets what later steps read.
func (step) Stop(context.Context, store.Server) error { return nil }

// withGPURequest puts the profile's GPU request into the options, replacing any of the user's:
// the profile decides what its servers get.
func withGPURequest(opts json.RawMessage, p config.Profile) (json.RawMessage, error) {
	o := map[string]any{}
	if err := json.Unmarshal(opts, &o); err != nil {
		return nil, fmt.Errorf("read user_options: %w", err)
	}
	delete(o, "gpus")
	delete(o, "mig_profile")
	if p.GPUs > 0 {
		o["gpus"] = p.GPUs
	} else {
		o["mig_profile"] = p.MIGProfile
	}
	return json.Marshal(o)
}
