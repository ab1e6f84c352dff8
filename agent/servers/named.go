package servers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// NamedServers is whether users may have servers besides their default one (hub.allow_named_servers)
// and how many (hub.named_server_limit_per_user; 0: no limit). The core enforces both at Start,
// so the API and the pages refuse alike.
type NamedServers struct {
	Allow bool
	Limit int
}

// serverLabel names a server in messages as JupyterHub's logs do: "alice's server", "alice:gpu".
func serverLabel(user, server string) string {
	if server == "" {
		return user + "'s server"
	}
	return user + ":" + server
}

// mayHave refuses a start of a named server that named servers being off, its name, or the limit
// rule out. The limit counts a user's named server records, running or not, as JupyterHub's
// does: a server that exists may always start again; a new one needs a free place, which
// removing one (DELETE with "remove") makes. Called with m.mu held, so two requests cannot both
// take the last place.
func (m *Manager) mayHave(ctx context.Context, u store.User, name string) error {
	if name == "" {
		return nil
	}
	if !m.opts.Named.Allow {
		return conflict("named servers are not enabled (hub.allow_named_servers)")
	}
	if err := ValidServerName(name); err != nil {
		return conflict("%v", err)
	}
	if m.opts.Named.Limit <= 0 {
		return nil
	}
	if _, err := m.store.FindServer(ctx, u.ID, name); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	all, err := m.store.Servers(ctx, u.ID, false)
	if err != nil {
		return err
	}
	named := 0
	for _, sv := range all {
		if sv.Name != "" {
			named++
		}
	}
	if named >= m.opts.Named.Limit {
		return conflict("user %s already has the maximum of %d named servers (hub.named_server_limit_per_user); one must be deleted before a new server can be created", u.Name, m.opts.Named.Limit)
	}
	return nil
}

// Remove stops a named server and then deletes its record, as JupyterHub's DELETE with
// {"remove": true} does; the channel closes once the record is gone. A server that does not
// stop keeps its record (and stays running, as Stop leaves it).
func (m *Manager) Remove(sv store.Server) (<-chan struct{}, error) {
	if sv.Name == "" {
		return nil, conflict("the default server cannot be removed, only stopped")
	}
	stopped, err := m.Stop(sv)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-stopped
		ctx := context.WithoutCancel(m.life)
		m.mu.Lock()
		defer m.mu.Unlock()
		cur, err := m.store.ServerByID(ctx, sv.ID)
		if err != nil {
			return // removed already
		}
		if cur.State != store.Stopped || m.stops[cur.ID] != nil || m.spawns[cur.ID] != nil && !m.spawnOver(cur.ID) {
			m.log.Warn("not removing a server that did not stop", "user", cur.UserName, "server", cur.Name, "state", cur.State)
			return
		}
		if err := m.store.DeleteServer(ctx, cur.ID); err != nil {
			m.log.Error("remove server", "user", cur.UserName, "server", cur.Name, "err", fmt.Errorf("delete record: %w", err))
			return
		}
		delete(m.spawns, cur.ID)
		m.log.Info("server removed", "user", cur.UserName, "server", cur.Name)
	}()
	return done, nil
}

// spawnOver reports whether the server's last spawn has finished; m.mu must be held.
func (m *Manager) spawnOver(id int64) bool {
	select {
	case <-m.spawns[id].Finished():
		return true
	default:
		return false
	}
}

// maxServerName keeps a server's name short enough for its unit name, URL and OAuth client id.
const maxServerName = 64

// ValidServerName checks a named server's name. JupyterHub refuses only '/', because the name is
// a path segment of the server's URL; this hub also puts it in a unit name, a cookie path and an
// OAuth redirect URI, so it takes the characters that need no escaping in any of them: letters,
// digits and "-", "_", "." and "~", not starting with "." (no "." or ".." segments).
func ValidServerName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a named server needs a name")
	case strings.Contains(name, "/"):
		return fmt.Errorf("invalid server name %q: it may not contain '/'", name)
	case len(name) > maxServerName:
		return fmt.Errorf("invalid server name %q: longer than %d characters", name, maxServerName)
	case name[0] == '.':
		return fmt.Errorf("invalid server name %q: it may not start with '.'", name)
	}
	for _, r := range name {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_.~", r)) {
			return fmt.Errorf("invalid server name %q: use letters, digits, '-', '_', '.' and '~'", name)
		}
	}
	return nil
}
