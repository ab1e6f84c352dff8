package servers

import (
	"context"
	"sync"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// UsageReader reads what a unit uses now. The wiring fills it in from the unit's cgroup (the
// cgroup package); the core does not know where the numbers come from.
type UsageReader interface {
	Usage(ctx context.Context, unit string) (Usage, error)
}

// Usage is what a server's unit uses: memory now, and CPU time since it started.
type Usage struct {
	MemoryBytes uint64
	CPU         time.Duration
}

// ServerUsage is a server's usage with its CPU load: the share of one CPU it used between
// CPUSince and At (the previous reading, or the server's start for the first one).
type ServerUsage struct {
	Usage
	At         time.Time
	CPUPercent float64
	CPUSince   time.Time
}

// usageLog keeps each server's last two readings at least a second apart, so that a reading
// gives the CPU load since one a little before it rather than the average over the server's
// life, even when the page and an API client read at nearly the same moment.
type usageLog struct {
	mu   sync.Mutex
	now  func() time.Time
	last map[int64][]ServerUsage // oldest first
}

func newUsageLog() *usageLog {
	return &usageLog{now: time.Now, last: map[int64][]ServerUsage{}}
}

// minSpan is the shortest span a CPU load is measured over; shorter ones are mostly noise.
const minSpan = time.Second

// ServerUsage reads what a running server uses now; false when it is not running, the hub has
// no reader, or the unit's cgroup cannot be read (the reason is logged at debug level).
func (m *Manager) ServerUsage(ctx context.Context, sv store.Server) (ServerUsage, bool) {
	if m.opts.Usage == nil || sv.State != store.Running || sv.Unit == "" {
		return ServerUsage{}, false
	}
	u, err := m.opts.Usage.Usage(ctx, sv.Unit)
	if err != nil {
		m.log.Debug("read server's usage", "user", sv.UserName, "server", sv.Name, "unit", sv.Unit, "err", err)
		return ServerUsage{}, false
	}
	return m.usage.add(sv, u), true
}

func (l *usageLog) add(sv store.Server, u Usage) ServerUsage {
	now := l.now()
	out := ServerUsage{Usage: u, At: now, CPUSince: sv.Started}
	base := Usage{} // the server's start: it had used nothing
	l.mu.Lock()
	defer l.mu.Unlock()
	// Readings from an earlier run of the server (its cgroup was made anew) are no baseline.
	kept := l.last[sv.ID][:0:0]
	for _, r := range l.last[sv.ID] {
		if !r.At.Before(sv.Started) && r.CPU <= u.CPU {
			kept = append(kept, r)
		}
	}
	for i := len(kept) - 1; i >= 0; i-- {
		if now.Sub(kept[i].At) >= minSpan {
			base, out.CPUSince = kept[i].Usage, kept[i].At
			break
		}
	}
	if n := len(kept); n == 0 || now.Sub(kept[n-1].At) >= minSpan {
		kept = append(kept, out)
		if len(kept) > 2 {
			kept = kept[len(kept)-2:]
		}
	}
	l.last[sv.ID] = kept
	if span := now.Sub(out.CPUSince); !out.CPUSince.IsZero() && span > 0 {
		out.CPUPercent = 100 * float64(u.CPU-base.CPU) / float64(span)
	}
	return out
}

// forget drops a server's readings once it stopped.
func (l *usageLog) forget(serverID int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, serverID)
}
