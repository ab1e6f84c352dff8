// Package metrics is the hub's Prometheus exposition at /hub/metrics, on a registry of its own
// (never the global one): Python JupyterHub 5.5's metrics under their names, labels and buckets
// where this hub does the same thing, the Go runtime and the process, and whatever collectors
// the wiring adds (the GPUs).
//
// It is fed three ways. The lifecycle core reports spawns, stops and polls through the
// servers.Observer that Metrics implements; requests are timed by Middleware, mounted once
// around the hub's handler; and the counts of users and servers are read from their owners at
// each scrape, so they cannot drift from the truth as counters kept on the side could.
//
// What JupyterHub has and this hub does not:
//   - jupyterhub_proxy_add_duration_seconds, _delete_ and _poll_: there is no proxy to call. The
//     route table is a map inside the hub, changed under the lifecycle lock in the same step
//     that records the server, so these would time a map write and always say success.
//   - jupyterhub_event_loop_interval_seconds: Go has no event loop that one slow callback
//     blocks; requests run on goroutines of their own. The scheduler's latency, the closest
//     measure of a hub too busy to answer, is go_sched_latencies_seconds (Go collector).
//   - jupyterhub_hub_startup_duration_seconds and jupyterhub_init_spawners_duration_seconds
//     are not exported: the one start-up step worth timing, checking the servers' records
//     against the units that run, is what check_routes_duration_seconds times here.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
)

// Users counts the hub's users; the store implements it.
type Users interface {
	CountUsers(ctx context.Context) (int, error)
	CountActiveUsers(ctx context.Context, since time.Time) (int, error)
}

// Options are where the metrics read what they count.
type Options struct {
	Users Users
	// Running counts the servers that run and are routed to (JupyterHub's running_servers: a
	// spawn under way is not counted yet).
	Running func() int
	// Usage lists running servers with what they use, read at each scrape; nil exports no
	// per-server usage. It is the seam for the cgroup reader.
	Usage func(ctx context.Context) ([]ServerUsage, error)
	// Collectors are registered too (the GPUs' collector).
	Collectors []prometheus.Collector
	Logger     *slog.Logger
}

// Metrics is the hub's registry and the instruments the hub feeds.
type Metrics struct {
	opts     Options
	log      *slog.Logger
	reg      *prometheus.Registry
	requests *prometheus.HistogramVec
	spawns   *prometheus.HistogramVec
	stops    *prometheus.HistogramVec
	polls    *prometheus.HistogramVec
	routes   prometheus.Histogram
	users    prometheus.Gauge
	active   *prometheus.GaugeVec
	running  prometheus.Gauge
	usage    *usageCollector
}

// Buckets as JupyterHub 5.5 has them (it leaves out JUPYTERHUB_*_BUCKETS overrides here).
var (
	// defaultBuckets are Python prometheus_client's defaults, which JupyterHub's histograms
	// without buckets of their own get; Go's lack 0.075, 0.75 and 7.5.
	defaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	// spawnBuckets reach ten minutes: spawns take a while.
	spawnBuckets = []float64{0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 180, 300, 600}
)

// activePeriods are active_users' period label and how far back each looks.
var activePeriods = []struct {
	label string
	d     time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// New makes the registry with every metric in it. Labelled series that dashboards expect
// exist from the start, at zero, as JupyterHub creates them.
func New(o Options) *Metrics {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	hist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "jupyterhub", Name: name, Help: help, Buckets: buckets}, labels)
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "jupyterhub", Name: name, Help: help})
	}
	m := &Metrics{
		opts: o, log: o.Logger, reg: prometheus.NewRegistry(),
		requests: hist("request_duration_seconds", "How long the hub took to answer HTTP requests, by method, route pattern (handler) and status code (499: the client went away first)", defaultBuckets, "method", "handler", "code"),
		spawns:   hist("server_spawn_duration_seconds", "How long spawning a server took, from the request until it answered, by how the spawn ended", spawnBuckets, "status"),
		stops:    hist("server_stop_seconds", "How long stopping a server took, by whether it stopped", defaultBuckets, "status"),
		polls:    hist("server_poll_duration_seconds", "How long asking systemd whether a server's unit runs took, by the answer", defaultBuckets, "status"),
		routes:   prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "jupyterhub", Name: "check_routes_duration_seconds", Help: "How long checking every server's route against the units systemd runs took (at start)", Buckets: defaultBuckets}),
		users:    gauge("total_users", "How many users the hub has"),
		active:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "jupyterhub", Name: "active_users", Help: "How many users were active within the period"}, []string{"period"}),
		running:  gauge("running_servers", "How many user servers run (spawned and routed to)"),
		usage:    &usageCollector{},
	}
	for _, s := range servers.SpawnStatuses {
		m.spawns.WithLabelValues(string(s))
	}
	for _, s := range []string{"success", "failure"} {
		m.stops.WithLabelValues(s)
	}
	for _, s := range []string{"running", "stopped"} {
		m.polls.WithLabelValues(s)
	}
	for _, p := range activePeriods {
		m.active.WithLabelValues(p.label)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.spawns, m.stops, m.polls, m.routes, m.users, m.active, m.running,
	)
	if o.Usage != nil {
		m.reg.MustRegister(m.usage)
	}
	m.reg.MustRegister(o.Collectors...)
	return m
}

// Registry is the hub's registry, for tests and collectors added later.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the exposition. The counts read from the store and the servers are refreshed
// first, with the scrape's context, so a scraper that gives up stops the queries.
func (m *Metrics) Handler() http.Handler {
	expose := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // one unreadable GPU must not hide the rest
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.refresh(r.Context())
		expose.ServeHTTP(w, r)
	})
}

// refresh reads the counts. One that cannot be read keeps its last value, and says why in the
// log; the scrape goes on.
func (m *Metrics) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if m.opts.Running != nil {
		m.running.Set(float64(m.opts.Running()))
	}
	if u := m.opts.Users; u != nil {
		if n, err := u.CountUsers(ctx); err != nil {
			m.log.Warn("metrics: count users", "err", err)
		} else {
			m.users.Set(float64(n))
		}
		// One fixed now for every period, as JupyterHub does, so 24h ≤ 7d ≤ 30d holds.
		now := time.Now()
		for _, p := range activePeriods {
			if n, err := u.CountActiveUsers(ctx, now.Add(-p.d)); err != nil {
				m.log.Warn("metrics: count active users", "period", p.label, "err", err)
			} else {
				m.active.WithLabelValues(p.label).Set(float64(n))
			}
		}
	}
	if m.opts.Usage != nil {
		use, err := m.opts.Usage(ctx)
		if err != nil {
			m.log.Warn("metrics: read servers' usage", "err", err)
			return
		}
		m.usage.set(use)
	}
}

// SpawnFinished implements servers.Observer.
func (m *Metrics) SpawnFinished(status servers.SpawnStatus, d time.Duration) {
	m.spawns.WithLabelValues(string(status)).Observe(d.Seconds())
}

// StopFinished implements servers.Observer.
func (m *Metrics) StopFinished(ok bool, d time.Duration) {
	status := "success"
	if !ok {
		status = "failure"
	}
	m.stops.WithLabelValues(status).Observe(d.Seconds())
}

// Polled implements servers.Observer.
func (m *Metrics) Polled(running bool, d time.Duration) {
	status := "running"
	if !running {
		status = "stopped"
	}
	m.polls.WithLabelValues(status).Observe(d.Seconds())
}

// Reconciled implements servers.Observer: JupyterHub's check_routes compares its routes with
// the proxy's; here the routes are checked against the units that survived a restart.
func (m *Metrics) Reconciled(d time.Duration) { m.routes.Observe(d.Seconds()) }

var _ servers.Observer = (*Metrics)(nil)
