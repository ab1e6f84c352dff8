package servers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

type fixedUsage map[string]Usage

func (f fixedUsage) Usage(ctx context.Context, unit string) (Usage, error) {
	u, ok := f[unit]
	if !ok {
		return Usage{}, errors.New("no cgroup")
	}
	return u, nil
}

func usageManager(r UsageReader) (*Manager, *time.Time) {
	m := New(context.Background(), nil, nil, nil, Options{Usage: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m.usage.now = func() time.Time { return now }
	return m, &now
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestFirstReadingGivesTheLoadSinceTheServerStarted(t *testing.T) {
	r := fixedUsage{"u.service": {MemoryBytes: 1 << 20, CPU: 5 * time.Second}}
	m, now := usageManager(r)
	sv := store.Server{ID: 1, State: store.Running, Unit: "u.service", Started: now.Add(-10 * time.Second)}
	u, ok := m.ServerUsage(context.Background(), sv)
	if !ok || u.MemoryBytes != 1<<20 || !near(u.CPUPercent, 50) || !u.CPUSince.Equal(sv.Started) {
		t.Fatalf("got %+v %v, want 1 MiB at 50%% since the start", u, ok)
	}
}

func TestLaterReadingsGiveTheLoadSinceAnEarlierOne(t *testing.T) {
	r := fixedUsage{"u.service": {CPU: 5 * time.Second}}
	m, now := usageManager(r)
	sv := store.Server{ID: 1, State: store.Running, Unit: "u.service", Started: now.Add(-10 * time.Second)}
	m.ServerUsage(context.Background(), sv)
	*now = now.Add(4 * time.Second)
	r["u.service"] = Usage{CPU: 9 * time.Second} // a whole CPU busy
	u, _ := m.ServerUsage(context.Background(), sv)
	if !near(u.CPUPercent, 100) {
		t.Errorf("after a busy 4 s: %v%%, want 100", u.CPUPercent)
	}
	// A reading right after another measures over the one before, not over a few milliseconds.
	*now = now.Add(10 * time.Millisecond)
	u, _ = m.ServerUsage(context.Background(), sv)
	if !near(u.CPUPercent, 100*4/4.01) {
		t.Errorf("a reading 10 ms later: %v%%, want about 100 over the last 4 s", u.CPUPercent)
	}
}

func TestAServerStartedAgainDropsItsOldReadings(t *testing.T) {
	r := fixedUsage{"u.service": {CPU: 50 * time.Second}}
	m, now := usageManager(r)
	sv := store.Server{ID: 1, State: store.Running, Unit: "u.service", Started: now.Add(-100 * time.Second)}
	m.ServerUsage(context.Background(), sv)
	*now = now.Add(10 * time.Second)
	sv.Started = now.Add(-2 * time.Second)
	r["u.service"] = Usage{CPU: time.Second}
	if u, _ := m.ServerUsage(context.Background(), sv); !near(u.CPUPercent, 50) {
		t.Errorf("new run: %v%%, want 50 (1 s over its 2 s)", u.CPUPercent)
	}
}

func TestUsageIsUnknownForStoppedServersAndUnreadableUnits(t *testing.T) {
	m, _ := usageManager(fixedUsage{})
	if _, ok := m.ServerUsage(context.Background(), store.Server{ID: 1, State: store.Stopped, Unit: "u.service"}); ok {
		t.Error("a stopped server has usage")
	}
	if _, ok := m.ServerUsage(context.Background(), store.Server{ID: 1, State: store.Running, Unit: "gone.service"}); ok {
		t.Error("a unit without a cgroup has usage")
	}
	none, _ := usageManager(nil)
	none.opts.Usage = nil
	if _, ok := none.ServerUsage(context.Background(), store.Server{ID: 1, State: store.Running, Unit: "u.service"}); ok {
		t.Error("a hub without a reader has usage")
	}
}
