package pam

import (
	"errors"
	"fmt"
	"os/user"
)

// Groups lists the Unix group names of a user (primary group included), via os/user.
// Group IDs without a name are left out: allow-lists in the configuration
// name groups, so a bare number could never match one.
func Groups(username string) ([]string, error) {
	if username == "" {
		return nil, errors.New("pam: groups: empty username")
	}
	u, err := user.Lookup(username)
	if err != nil {
		return nil, fmt.Errorf("pam: groups of %q: %w", username, err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("pam: groups of %q: %w", username, err)
	}
	// getgrouplist includes the primary group, but other NSS back ends used by
	// os/user's pure-Go path only read /etc/group, which often does not list
	// a user in their own primary group.
	ordered := make([]string, 0, len(gids)+1)
	ordered = append(ordered, u.Gid)
	ordered = append(ordered, gids...)

	seen := make(map[string]bool, len(ordered))
	names := make([]string, 0, len(ordered))
	for _, gid := range ordered {
		if seen[gid] {
			continue
		}
		seen[gid] = true
		g, err := user.LookupGroupId(gid)
		if err != nil {
			var unknown user.UnknownGroupIdError
			if errors.As(err, &unknown) {
				continue
			}
			return nil, fmt.Errorf("pam: groups of %q: looking up gid %s: %w", username, gid, err)
		}
		names = append(names, g.Name)
	}
	return names, nil
}
