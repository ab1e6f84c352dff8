package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// BenchmarkStartup10000Users is make bench's "start-up with 10,000 users", less the process's
// own start: from opening the store of a hub that has 10,000 users, each of whom has spawned
// once (20 of them run now; two stops were under way), to GET /hub/api/ answering 200, as
// agent.Open and Hub.Run do it, with stand-ins for systemd and PAM.
func BenchmarkStartup10000Users(b *testing.B) {
	cfg, units := startupDataDir(b, 10000)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var open, wire, serve time.Duration // summed over the rounds
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		began := time.Now()
		st, err := agent.OpenStore(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		opened := time.Since(began)
		h, err := agent.New(ctx, cfg, agent.Deps{Auth: &hubtest.Passwords{}, Units: units, Store: st, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		wired := time.Since(began)
		done := make(chan error, 1)
		go func() { done <- h.Run(ctx, nil) }()
		for {
			resp, err := client.Get("http://" + cfg.Hub.Listen + "/hub/api/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case err := <-done:
				b.Fatalf("the hub stopped before it answered: %v", err)
			case <-time.After(100 * time.Microsecond):
			}
		}
		answered := time.Since(began)
		b.StopTimer() // shutting down and putting the interrupted stops back is no start-up
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		h.Close()
		interrupted(b, cfg)
		b.StartTimer()
		open, wire, serve = open+opened, wire+wired-opened, serve+answered-wired
	}
	ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N) }
	b.ReportMetric(ms(open), "open-ms")   // agent.OpenStore
	b.ReportMetric(ms(wire), "wire-ms")   // agent.New
	b.ReportMetric(ms(serve), "serve-ms") // Hub.Run (reconcile, listen) until the API answered
}

// startupDataDir makes a data dir whose store has n users, each with a default server record
// (as everyone who ever spawned has): the first 20 running (their units run) with an API token,
// the next two with a stop that was under way, the rest stopped.
func startupDataDir(b *testing.B, n int) (config.Config, *runningUnits) {
	b.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Hub.DataDir = b.TempDir()
	cfg.Hub.Listen = freeAddr(b)
	cfg.Hub.ProxySocket = ""
	tokenFile := filepath.Join(cfg.Hub.DataDir, "service-token")
	if err := os.WriteFile(tokenFile, []byte(store.NewSecret()+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg.Services = []config.Service{{Name: "bench", APITokenFile: tokenFile, Roles: []string{"admin"}}}
	st, err := agent.OpenStore(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	units := &runningUnits{}
	for i := range n {
		u, err := st.CreateUser(ctx, fmt.Sprintf("fill%05d", i), false)
		if err != nil {
			b.Fatal(err)
		}
		sv, err := st.Server(ctx, u.ID, "")
		if err != nil {
			b.Fatal(err)
		}
		if i >= 22 {
			continue
		}
		sv.State, sv.Unit, sv.Port, sv.Started = store.Running, "jupyter-"+u.Name+".service", 40000+i, time.Now()
		if i >= 20 {
			sv.State = store.Stopping
		} else {
			units.list = append(units.list, servers.UnitState{Unit: sv.Unit, ActiveState: "active", SubState: "running"})
		}
		if err := st.SaveServer(ctx, sv); err != nil {
			b.Fatal(err)
		}
		if _, _, err := st.CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"inherit"}}); err != nil {
			b.Fatal(err)
		}
	}
	return cfg, units
}

// interrupted marks the servers of fill00020 and fill00021 as stopping again, as a hub that
// was killed mid-stop leaves them: the last round's reconcile finished those stops (at once:
// runningUnits stops nothing).
func interrupted(b *testing.B, cfg config.Config) {
	b.Helper()
	ctx := context.Background()
	st, err := agent.OpenStore(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for _, name := range []string{"fill00020", "fill00021"} {
		u, err := st.GetUser(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		sv, err := st.Server(ctx, u.ID, "")
		if err != nil {
			b.Fatal(err)
		}
		sv.State, sv.Unit = store.Stopping, "jupyter-"+name+".service"
		if err := st.SaveServer(ctx, sv); err != nil {
			b.Fatal(err)
		}
	}
}

// runningUnits stands in for systemd after a hub restart: the units it lists run, and stopping
// one changes nothing, so that every round starts with the same units.
type runningUnits struct{ list []servers.UnitState }

func (u *runningUnits) List(context.Context) ([]servers.UnitState, error) { return u.list, nil }
func (u *runningUnits) State(_ context.Context, unit string) (servers.UnitState, error) {
	for _, s := range u.list {
		if s.Unit == unit {
			return s, nil
		}
	}
	return servers.UnitState{Unit: unit, ActiveState: "inactive", SubState: "dead"}, nil
}
func (u *runningUnits) Stop(context.Context, string) error { return nil }
func (u *runningUnits) Journal(context.Context, string, int, time.Time) ([]string, error) {
	return nil, nil
}
