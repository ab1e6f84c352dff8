package servers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// liveUnits says every unit it was given is running, as systemd does for servers that outlived
// a hub restart.
type liveUnits struct{ list []servers.UnitState }

func (u *liveUnits) List(context.Context) ([]servers.UnitState, error) { return u.list, nil }
func (u *liveUnits) State(_ context.Context, unit string) (servers.UnitState, error) {
	return servers.UnitState{Unit: unit, ActiveState: "active", SubState: "running"}, nil
}
func (u *liveUnits) Stop(context.Context, string) error { return nil }
func (u *liveUnits) Journal(context.Context, string, int, time.Time) ([]string, error) {
	return nil, nil
}

// BenchmarkReconcileAdopts1000Servers is the start-up cost of a hub that comes back to 1,000
// running servers: listing the units, reading the records and routing each again.
func BenchmarkReconcileAdopts1000Servers(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "hub.sqlite"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	units := &liveUnits{}
	for i := range 1000 {
		u, err := st.CreateUser(ctx, fmt.Sprintf("user%04d", i), false)
		if err != nil {
			b.Fatal(err)
		}
		sv, err := st.Server(ctx, u.ID, "")
		if err != nil {
			b.Fatal(err)
		}
		sv.State, sv.Unit, sv.Port, sv.Started = store.Running, "jupyter-"+u.Name+".service", 40000+i, time.Now()
		if err := st.SaveServer(ctx, sv); err != nil {
			b.Fatal(err)
		}
		units.list = append(units.list, servers.UnitState{Unit: sv.Unit, ActiveState: "active", SubState: "running"})
	}
	opts := servers.Options{
		UnitName: func(user, server string) string { return "jupyter-" + user + ".service" },
		PortLow:  40000, PortHigh: 49000, StartTimeout: 10 * time.Second, StopTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	b.ResetTimer()
	for b.Loop() {
		m := servers.New(ctx, st, units, nil, opts)
		if err := m.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
		if _, ok := m.Route("user0999", ""); !ok {
			b.Fatal("user0999's running server was not adopted")
		}
	}
}
