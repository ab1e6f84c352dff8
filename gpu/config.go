package gpu

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Config is the [gpu] section of the hub's configuration file.
type Config struct {
	// Enabled offers GPUs to servers. With it on, a host without the NVIDIA driver still
	// starts (it logs "no GPUs" and offers none).
	Enabled bool `toml:"enabled"`
	// Queue makes a spawn that finds nothing free wait for a device, first come first
	// served, instead of failing at once.
	Queue bool `toml:"queue"`
	// Quota is how many devices (whole GPUs and MIG devices together) the members of a Unix
	// or Keycloak group may hold at once across all their servers, e.g. {students = 1,
	// staff = 4}. A user in several listed groups gets the largest.
	Quota map[string]int `toml:"quota"`
	// DefaultQuota applies to users in none of the Quota groups; 0 gives them no GPUs.
	DefaultQuota int `toml:"default_quota"`
}

// DefaultConfig is what an empty [gpu] section means: GPUs offered when the host has any,
// one device per user, no waiting.
func DefaultConfig() Config {
	return Config{Enabled: true, DefaultQuota: 1}
}

// Validate returns every problem in the section, each naming its key and the fix.
func (c Config) Validate() error {
	var errs []error
	groups := make([]string, 0, len(c.Quota))
	for g := range c.Quota {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		switch n := c.Quota[g]; {
		case strings.TrimSpace(g) == "":
			errs = append(errs, fmt.Errorf("gpu.quota: a group name is empty; name a Unix or Keycloak group, e.g. students = 1"))
		case strings.HasPrefix(g, "/"):
			errs = append(errs, fmt.Errorf("gpu.quota.%q: write the group without Keycloak's leading \"/\" (%q), as the hub compares group names", g, strings.TrimPrefix(g, "/")))
		case n < 0:
			errs = append(errs, fmt.Errorf("gpu.quota.%s = %d: a quota is how many GPUs (or MIG devices) a member may hold at once; use 0 or more (0: none)", g, n))
		}
	}
	if c.DefaultQuota < 0 {
		errs = append(errs, fmt.Errorf("gpu.default_quota = %d: use 0 or more, the number of GPUs (or MIG devices) a user in none of the gpu.quota groups may hold (0: none)", c.DefaultQuota))
	}
	return errors.Join(errs...)
}

// quotaFor is the limit for a user in groups, and the group it comes from ("" for the
// default).
func (c Config) quotaFor(groups []string) (limit int, group string) {
	limit, found := c.DefaultQuota, false
	for _, g := range groups {
		n, ok := c.Quota[g]
		if !ok {
			continue
		}
		if !found || n > limit || (n == limit && g < group) {
			limit, group, found = n, g, true
		}
	}
	return limit, group
}
