package config

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strings"
)

// Profile is one [[profile]]: a kind of server users pick on the spawn page (JupyterHub's
// KubeSpawner profile_list), each with its own command, environment, limits and GPUs. With no
// [[profile]] at all, servers start as [spawner] says and the spawn page asks nothing.
type Profile struct {
	// Name is the profile's slug, what user_options.profile names: lowercase letters, digits
	// and '-'. JUPYTER_PROFILE_<NAME>_ENABLED (upper-cased, '-' as '_') overrides Enabled.
	Name        string `toml:"name"`
	DisplayName string `toml:"display_name"` // "" shows the name
	Description string `toml:"description"`
	// Enabled offers the profile; a disabled one is refused, through the API too.
	Enabled bool `toml:"enabled"`
	// Default is the one preselected on the form and used when a start names none.
	Default bool `toml:"default"`
	// Cmd replaces spawner.cmd (spawner.args still follow it), e.g. the jupyterhub-singleuser
	// of a venv or conda env; empty keeps spawner.cmd.
	Cmd []string `toml:"cmd"`
	// Env is set on top of spawner.env.
	Env map[string]string `toml:"env"`
	// Limits in the shapes of [spawner]'s; zero keeps the [spawner] limit.
	MemoryMax Size    `toml:"memory_max"`
	CPUQuota  Percent `toml:"cpu_quota"`
	TasksMax  uint64  `toml:"tasks_max"`
	// GPUs (whole GPUs) or MIGProfile (one MIG device, e.g. "1g.10gb"), at most one of them,
	// as user_options' gpus and mig_profile ask the gpu step.
	GPUs       int    `toml:"gpus"`
	MIGProfile string `toml:"mig_profile"`
	// AllowedUsers and AllowedGroups restrict the profile to these users and members of these
	// groups; both empty: everyone.
	AllowedUsers  []string `toml:"allowed_users"`
	AllowedGroups []string `toml:"allowed_groups"`

	// envErr is a JUPYTER_PROFILE_<NAME>_ENABLED that is not a boolean, for Validate to report.
	envErr string
}

// ProfileEnvVar is the variable of the hub's environment that overrides a profile's enabled key.
func ProfileEnvVar(name string) string {
	return "JUPYTER_PROFILE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_ENABLED"
}

// applyProfileEnv sets enabled from JUPYTER_PROFILE_<NAME>_ENABLED where the variable is set and
// not empty; a value that is not 1, 0, true or false is reported by Validate.
func (c *Config) applyProfileEnv(lookup func(string) (string, bool)) {
	for i := range c.Profiles {
		p := &c.Profiles[i]
		v, ok := lookup(ProfileEnvVar(p.Name))
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "true":
			p.Enabled = true
		case "0", "false":
			p.Enabled = false
		default:
			p.envErr = v
		}
	}
}

// profileName is a slug: it names the profile in user_options, in a form field and in an
// environment variable's name. At most 64 characters, checked apart
// (a bounded repeat compiles to a copy of its class per character, at every start of the hub).
var profileName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// validateProfiles checks every [[profile]]; keys are profile[N].key, N counting from 0 in the
// order of the file.
func (c *Config) validateProfiles(bad func(key, format string, args ...any)) {
	seen := map[string]int{}
	defaults := []string{}
	for i, p := range c.Profiles {
		key := func(k string) string { return fmt.Sprintf("profile[%d].%s", i, k) }
		if len(p.Name) > 64 || !profileName.MatchString(p.Name) {
			bad(key("name"), "%q must be 1 to 64 lowercase letters, digits or '-', starting and ending with a letter or digit (e.g. \"datascience\")", p.Name)
		} else if j, dup := seen[p.Name]; dup {
			bad(key("name"), "%q is also the name of profile[%d]; give each profile its own name", p.Name, j)
		} else {
			seen[p.Name] = i
		}
		if p.envErr != "" {
			bad(key("enabled"), "%s=%q in the hub's environment is not 1, 0, true or false", ProfileEnvVar(p.Name), p.envErr)
		}
		if p.Default {
			defaults = append(defaults, fmt.Sprintf("profile[%d] (%q)", i, p.Name))
		}
		if len(p.Cmd) > 0 && !filepath.IsAbs(p.Cmd[0]) {
			bad(key("cmd"), "%q must be a list whose first item is an absolute path, e.g. [\"/opt/venvs/torch/bin/jupyterhub-singleuser\"], or empty to keep spawner.cmd", p.Cmd)
		}
		for k := range p.Env {
			if !envName.MatchString(k) {
				bad(key("env"), "%q is not a valid environment variable name", k)
			}
		}
		if p.TasksMax > math.MaxInt64 {
			bad(key("tasks_max"), "must not be negative (0 keeps spawner.tasks_max)")
		}
		switch {
		case p.GPUs < 0:
			bad(key("gpus"), "%d: ask for a whole number of GPUs, 0 or more (0: none)", p.GPUs)
		case p.GPUs > 0 && p.MIGProfile != "":
			bad(key("gpus/mig_profile"), "set gpus (whole GPUs) or mig_profile (one MIG device), not both")
		}
		if mig := strings.TrimSpace(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(p.MIGProfile)), "mig")); p.MIGProfile != "" && !migProfile.MatchString(mig) {
			bad(key("mig_profile"), "%q is not a MIG profile such as \"1g.10gb\" or \"3g.40gb\"", p.MIGProfile)
		}
		for _, u := range p.AllowedUsers {
			if err := ValidUsername(u); err != nil {
				bad(key("allowed_users"), "%v", err)
			}
		}
		for _, g := range p.AllowedGroups {
			switch {
			case strings.TrimSpace(g) == "" || strings.ContainsFunc(g, func(r rune) bool { return r < 0x20 || r == 0x7f }):
				bad(key("allowed_groups"), "%q is not a group name; name a Unix or Keycloak group, e.g. \"staff\"", g)
			case strings.HasPrefix(g, "/"):
				bad(key("allowed_groups"), "write the group without Keycloak's leading \"/\" (%q): groups are compared without it", strings.TrimPrefix(g, "/"))
			}
		}
	}
	if len(defaults) > 1 {
		bad("profile.default", "%s are all marked default; mark at most one", strings.Join(defaults, ", "))
	}
}

// migProfile is NVIDIA's MIG profile name, "1g.10gb", optionally with a "+me" style suffix,
// once lower-cased and without a leading "MIG" (as the gpu package reads it).
var migProfile = regexp.MustCompile(`^[0-9]+g\.[0-9]+gb(\+[a-z0-9.]+)?$`)
