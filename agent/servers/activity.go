package servers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// activityLog remembers when the router last saw traffic for each server. Writing sqlite on every
// proxied request would make the database the bottleneck, so it is flushed every few seconds.
//
// It also keeps, in memory only, the latest traffic and the latest interaction (a request a
// person or a client program made, not an open tab's background polling) for the culler, which
// must not wait for the flush and tells the two apart. After a hub restart both start empty.
type activityLog struct {
	mu       sync.Mutex
	seen     map[int64]time.Time // since the last flush
	last     map[int64]time.Time
	interact map[int64]time.Time
}

func newActivityLog() *activityLog {
	return &activityLog{seen: map[int64]time.Time{}, last: map[int64]time.Time{}, interact: map[int64]time.Time{}}
}

func (a *activityLog) touch(serverID int64) {
	now := time.Now()
	a.mu.Lock()
	a.seen[serverID] = now
	a.last[serverID] = now
	a.mu.Unlock()
}

func (a *activityLog) interacted(serverID int64) {
	now := time.Now()
	a.mu.Lock()
	a.interact[serverID] = now
	a.mu.Unlock()
}

func (a *activityLog) get(serverID int64) Activity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Activity{Traffic: a.last[serverID], Interaction: a.interact[serverID]}
}

// forget drops a stopped server's entries, so a later run starts with none.
func (a *activityLog) forget(serverID int64) {
	a.mu.Lock()
	delete(a.last, serverID)
	delete(a.interact, serverID)
	a.mu.Unlock()
}

func (a *activityLog) flush(ctx context.Context, st *store.Store, log *slog.Logger) {
	a.mu.Lock()
	seen := a.seen
	a.seen = map[int64]time.Time{}
	a.mu.Unlock()
	for id, t := range seen {
		if err := st.TouchServer(ctx, id, t); err != nil {
			log.Warn("record server activity", "server_id", id, "err", err)
		}
	}
}

// Activity is what this hub process saw of a server's use through the router; zero times: none
// since the hub started or the server last started.
type Activity struct {
	Traffic     time.Time // the last request of any kind, an open tab's polling and WebSockets included
	Interaction time.Time // the last request a person or a client program made (see Interacted)
}

// Interacted records a request to a server that someone made on purpose: a page load, a save,
// a script's call; the router decides which requests are. The culler counts only these (and the
// kernels' own activity) unless cull.open_tabs_are_activity is set.
func (m *Manager) Interacted(serverID int64) { m.activity.interacted(serverID) }

// Activity is the server's latest traffic and interaction seen in this hub process.
func (m *Manager) Activity(serverID int64) Activity { return m.activity.get(serverID) }
