package servers_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// lateServer is a unit step whose server starts listening a while after the unit has started,
// as a real server does once its runtime has loaded: the gap the core's readiness wait spans.
type lateServer struct {
	after time.Duration

	mu       sync.Mutex
	srv      *http.Server
	listened time.Time
}

func (*lateServer) Name() string { return "unit" }

func (l *lateServer) Start(ctx context.Context, job *servers.Job) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(job.Server.Port))
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	l.mu.Lock()
	l.srv, l.listened = srv, time.Time{}
	l.mu.Unlock()
	time.AfterFunc(l.after, func() {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return // the spawn then times out, and the test says so
		}
		l.mu.Lock()
		l.listened = time.Now()
		l.mu.Unlock()
		srv.Serve(ln)
	})
	return nil
}

func (l *lateServer) Stop(ctx context.Context, sv store.Server) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv != nil {
		l.srv.Close()
	}
	return nil
}

func (l *lateServer) listenedAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.listened
}

// readyLag spawns alice's server once with the late server as its unit and returns how long
// after the server began listening the core called it ready.
func readyLag(tb testing.TB, m *servers.Manager, st *store.Store, u store.User, unit *lateServer) time.Duration {
	tb.Helper()
	prog, err := m.Start(u, "", nil)
	if err != nil {
		tb.Fatal(err)
	}
	select {
	case <-prog.Finished():
	case <-time.After(20 * time.Second):
		tb.Fatal("the spawn did not finish")
	}
	done := time.Now()
	if ev := prog.Last(); !ev.Ready {
		tb.Fatalf("the spawn failed: %s", ev.Message)
	}
	lag := done.Sub(unit.listenedAt())
	sv, err := st.Server(context.Background(), u.ID, "")
	if err != nil {
		tb.Fatal(err)
	}
	stopped, err := m.Stop(sv)
	if err != nil {
		tb.Fatal(err)
	}
	<-stopped
	return lag
}

func newLateCore(tb testing.TB, after time.Duration) (*servers.Manager, *store.Store, store.User, *lateServer) {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(tb.TempDir(), "hub.sqlite"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	u, err := st.CreateUser(ctx, "alice", false)
	if err != nil {
		tb.Fatal(err)
	}
	unit := &lateServer{after: after}
	m := servers.New(ctx, st, &liveUnits{}, []servers.Step{unit}, servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: 20 * time.Second, StopTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return m, st, u, unit
}

// BenchmarkReadinessWait is a whole spawn through the core whose server listens 20 ms after its
// unit started; ms-after-listen is how long the core took to call it ready after that.
func BenchmarkReadinessWait(b *testing.B) {
	m, st, u, unit := newLateCore(b, 20*time.Millisecond)
	var total time.Duration
	n := 0
	for b.Loop() {
		total += readyLag(b, m, st, u, unit)
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(n), "ms-after-listen")
}
