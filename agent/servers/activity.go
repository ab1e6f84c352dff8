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
type activityLog struct {
	mu   sync.Mutex
	seen map[int64]time.Time
}

func newActivityLog() *activityLog { return &activityLog{seen: map[int64]time.Time{}} }

func (a *activityLog) touch(serverID int64) {
	a.mu.Lock()
	a.seen[serverID] = time.Now()
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
