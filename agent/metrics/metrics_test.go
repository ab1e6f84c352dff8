package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/metrics"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// scrape parses an exposition as Prometheus does.
func scrape(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, body)
	}
	return fams
}

// sample is the value of the series of family name whose labels are exactly labels (a
// histogram's is its count); false if there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && labels[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		default:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// brokenStep fails every spawn of the user it is for, as a concern's step would (no NFS home).
type brokenStep struct{ user string }

func (brokenStep) Name() string { return "broken" }
func (b brokenStep) Start(ctx context.Context, job *servers.Job) error {
	if job.User.Name == b.user {
		return errors.New("the home directory is not there")
	}
	return nil
}
func (brokenStep) Stop(context.Context, store.Server) error { return nil }

// scraper scrapes th's /hub/metrics with token.
func scraper(t *testing.T, th *hubtest.Hub, token string) func() map[string]*dto.MetricFamily {
	return func() map[string]*dto.MetricFamily {
		t.Helper()
		r := th.Do("GET", "/hub/metrics", token, "")
		if r.Status != 200 {
			t.Fatalf("scrape = %d %s", r.Status, r.Body)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("scrape's Content-Type = %q, want the text format", ct)
		}
		return scrape(t, r.Body)
	}
}

// eventually scrapes until cond holds, for what the core does in the background.
func eventually(t *testing.T, get func() map[string]*dto.MetricFamily, what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		fams := get()
		if cond(fams) {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed in the metrics", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMetricsCountWhatTheHubDid(t *testing.T) {
	th := hubtest.NewWith(t, hubtest.Options{Steps: []servers.Step{brokenStep{user: "broken"}}})
	admin := th.User("admin", true)
	get := scraper(t, th, admin)

	// The series dashboards need are there, at zero, before anything happened.
	fams := get()
	for _, s := range []string{"success", "failure", "already-pending"} {
		if n, ok := sample(fams, "jupyterhub_server_spawn_duration_seconds", map[string]string{"status": s}); !ok || n != 0 {
			t.Errorf("spawn_duration_seconds{status=%q} = %v (there: %v) before any spawn", s, n, ok)
		}
	}
	for _, s := range []string{"success", "failure"} {
		if _, ok := sample(fams, "jupyterhub_server_stop_seconds", map[string]string{"status": s}); !ok {
			t.Errorf("no server_stop_seconds{status=%q}", s)
		}
	}
	for _, p := range []string{"24h", "7d", "30d"} {
		if _, ok := sample(fams, "jupyterhub_active_users", map[string]string{"period": p}); !ok {
			t.Errorf("no active_users{period=%q}", p)
		}
	}
	// The hub reconciled before serving (hubtest does not Run it); check_routes counts each.
	if err := th.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Users, through the API.
	for _, name := range []string{"alice", "bob", "broken"} {
		if r := th.Do("POST", "/hub/api/users/"+name, admin, ""); r.Status != 201 {
			t.Fatalf("create %s = %d %s", name, r.Status, r.Body)
		}
	}
	// alice is active now; bob was, three days ago.
	if r := th.Do("POST", "/hub/api/users/alice/activity", admin, fmt.Sprintf(`{"last_activity": %q}`, time.Now().UTC().Format(time.RFC3339))); r.Status >= 300 {
		t.Fatalf("activity = %d %s", r.Status, r.Body)
	}
	if r := th.Do("POST", "/hub/api/users/bob/activity", admin, fmt.Sprintf(`{"last_activity": %q}`, time.Now().Add(-72*time.Hour).UTC().Format(time.RFC3339))); r.Status >= 300 {
		t.Fatalf("activity = %d %s", r.Status, r.Body)
	}
	if r := th.Do("GET", "/no/such/page", "", ""); r.Status != 404 {
		t.Fatalf("GET /no/such/page = %d", r.Status)
	}

	// A server that starts, one that fails to, then the first stopped.
	th.Serve("alice", http.NotFoundHandler())
	// The API waits a moment for a spawn, so it may answer with the failure itself.
	if r := th.Do("POST", "/hub/api/users/broken/server", admin, ""); r.Status != 202 && r.Status != 500 {
		t.Fatalf("start broken's server = %d %s", r.Status, r.Body)
	}
	fams = eventually(t, get, "the failed spawn", func(f map[string]*dto.MetricFamily) bool {
		n, _ := sample(f, "jupyterhub_server_spawn_duration_seconds", map[string]string{"status": "failure"})
		return n == 1
	})
	check := func(fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
		t.Helper()
		if got, ok := sample(fams, name, labels); !ok || got != want {
			t.Errorf("%s%v = %v (there: %v), want %v", name, labels, got, ok, want)
		}
	}
	check(fams, "jupyterhub_server_spawn_duration_seconds", map[string]string{"status": "success"}, 1)
	check(fams, "jupyterhub_running_servers", nil, 1)
	check(fams, "jupyterhub_total_users", nil, 4)
	check(fams, "jupyterhub_check_routes_duration_seconds", nil, 1)
	day, _ := sample(fams, "jupyterhub_active_users", map[string]string{"period": "24h"})
	week, _ := sample(fams, "jupyterhub_active_users", map[string]string{"period": "7d"})
	month, _ := sample(fams, "jupyterhub_active_users", map[string]string{"period": "30d"})
	if day < 1 || week-day != 1 || month != week {
		t.Errorf("active users: 24h %v, 7d %v, 30d %v; want alice (and maybe admin) in all, bob from 7d on", day, week, month)
	}
	// The readiness of alice's server was asked of systemd, or no poll happened: the spawn
	// answered within the first second. Either way the series exist.
	if _, ok := sample(fams, "jupyterhub_server_poll_duration_seconds", map[string]string{"status": "running"}); !ok {
		t.Error("no server_poll_duration_seconds{status=running}")
	}

	stop := th.Do("DELETE", "/hub/api/users/alice/server", admin, "")
	if stop.Status != 202 && stop.Status != 204 {
		t.Fatalf("stop alice's server = %d %s", stop.Status, stop.Body)
	}
	fams = eventually(t, get, "the stop", func(f map[string]*dto.MetricFamily) bool {
		n, _ := sample(f, "jupyterhub_server_stop_seconds", map[string]string{"status": "success"})
		return n == 1
	})
	check(fams, "jupyterhub_running_servers", nil, 0)
	check(fams, "jupyterhub_server_stop_seconds", map[string]string{"status": "failure"}, 0)

	// Requests, by the route that served them: never the raw path.
	req := "jupyterhub_request_duration_seconds"
	check(fams, req, map[string]string{"method": "POST", "handler": "/hub/api/users/{name}", "code": "201"}, 3)
	check(fams, req, map[string]string{"method": "POST", "handler": "/hub/api/users/{name}/activity", "code": "200"}, 2)
	check(fams, req, map[string]string{"method": "DELETE", "handler": "/hub/api/users/{name}/server", "code": fmt.Sprint(stop.Status)}, 1)
	check(fams, req, map[string]string{"method": "GET", "handler": "unmatched", "code": "404"}, 1)
	for _, m := range fams[req].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "handler" && (strings.Contains(l.GetValue(), "alice") || strings.Contains(l.GetValue(), "/no/such")) {
				t.Errorf("a raw path is a handler label: %q", l.GetValue())
			}
		}
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil || fams["go_sched_latencies_seconds"] == nil {
		t.Error("the Go runtime's and the process's metrics are missing")
	}
	if fams["jupyterhub_server_memory_bytes"] != nil {
		t.Error("per-server usage is exported without a reader for it")
	}
}

func TestMetricsNeedReadMetrics(t *testing.T) {
	th := hubtest.New(t)
	admin, alice := th.User("admin", true), th.User("alice", false)
	for who, token := range map[string]string{"nobody": "", "a user": alice} {
		if r := th.Do("GET", "/hub/metrics", token, ""); r.Status != 403 {
			t.Errorf("%s scrapes the metrics: %d", who, r.Status)
		}
	}
	// A token holding read:metrics and nothing else, as a Prometheus server's would (of an
	// admin: a token holds no scope its owner lacks).
	u, _ := th.Store().GetUser(context.Background(), "admin")
	_, only, err := th.Store().CreateToken(context.Background(), store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"read:metrics"}})
	if err != nil {
		t.Fatal(err)
	}
	for who, token := range map[string]string{"an admin": admin, "a read:metrics token": only} {
		if r := th.Do("GET", "/hub/metrics", token, ""); r.Status != 200 {
			t.Errorf("%s cannot scrape: %d %s", who, r.Status, r.Body)
		}
	}
}

func TestPublicMetricsNeedNoToken(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.MetricsPublic = true })
	r := th.Do("GET", "/hub/metrics", "", "")
	if r.Status != 200 || scrape(t, r.Body)["jupyterhub_total_users"] == nil {
		t.Errorf("scrape without a token, hub.metrics_public = true: %d %s", r.Status, r.Body)
	}
}

func TestTheDeprecatedKeyStillOpensTheMetrics(t *testing.T) {
	off := false
	th := hubtest.New(t, func(c *config.Config) { c.Hub.AuthenticateMetrics = &off })
	if r := th.Do("GET", "/hub/metrics", "", ""); r.Status != 200 {
		t.Errorf("scrape without a token, hub.authenticate_metrics = false: %d", r.Status)
	}
}

// A client that hangs up is not the hub failing: its request counts as 499, not 500.
func TestARequestWhoseClientLeftIsNot500(t *testing.T) {
	m := metrics.New(metrics.Options{})
	handlerDone := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handlerDone)
		<-r.Context().Done()
		http.Error(w, "gave up", http.StatusInternalServerError) // what a careless handler does
	})
	srv := httptest.NewServer(m.Middleware(func(*http.Request) string { return "/slow" }, slow))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request was answered")
	}
	select {
	case <-handlerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never saw the client leave")
	}
	// The middleware observes right after the handler returns.
	var fams map[string]*dto.MetricFamily
	for range 100 {
		got, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		fams = map[string]*dto.MetricFamily{}
		for _, f := range got {
			fams[f.GetName()] = f
		}
		if _, ok := sample(fams, "jupyterhub_request_duration_seconds", map[string]string{"method": "GET", "handler": "/slow", "code": "499"}); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, ok := sample(fams, "jupyterhub_request_duration_seconds", map[string]string{"method": "GET", "handler": "/slow", "code": "499"}); !ok || n != 1 {
		t.Errorf("the abandoned request counts %v as 499 (there: %v)", n, ok)
	}
	if _, ok := sample(fams, "jupyterhub_request_duration_seconds", map[string]string{"method": "GET", "handler": "/slow", "code": "500"}); ok {
		t.Error("the abandoned request counts as a 500")
	}
}

func TestMethodsOutsideHTTPsAreOneLabel(t *testing.T) {
	m := metrics.New(metrics.Options{})
	h := m.Middleware(func(*http.Request) string { return "/x" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, method := range []string{"BREW", "WHEN", "GET"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/x", nil))
	}
	got, _ := m.Registry().Gather()
	fams := map[string]*dto.MetricFamily{}
	for _, f := range got {
		fams[f.GetName()] = f
	}
	if n, _ := sample(fams, "jupyterhub_request_duration_seconds", map[string]string{"method": "OTHER", "handler": "/x", "code": "200"}); n != 2 {
		t.Errorf("unknown methods counted %v times as OTHER, want 2", n)
	}
}

// The seam for the cgroup reader: whatever lists the servers with their usage is exported per
// server, and a server gone from the list is gone from the metrics.
func TestServerUsageIsExportedPerServerWhileItRuns(t *testing.T) {
	use := []metrics.ServerUsage{{User: "alice", Server: "", MemoryBytes: 512 << 20, CPUSeconds: 12.5}, {User: "bob", Server: "gpu", MemoryBytes: 1 << 30, CPUSeconds: 3}}
	m := metrics.New(metrics.Options{Usage: func(context.Context) ([]metrics.ServerUsage, error) { return use, nil }})
	get := func() map[string]*dto.MetricFamily {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/hub/metrics", nil))
		return scrape(t, rec.Body.Bytes())
	}
	fams := get()
	if n, _ := sample(fams, "jupyterhub_server_memory_bytes", map[string]string{"user": "alice", "server": ""}); n != 512<<20 {
		t.Errorf("alice's memory = %v", n)
	}
	if n, _ := sample(fams, "jupyterhub_server_cpu_seconds_total", map[string]string{"user": "bob", "server": "gpu"}); n != 3 {
		t.Errorf("bob's CPU = %v", n)
	}
	use = use[:1]
	if _, ok := sample(get(), "jupyterhub_server_memory_bytes", map[string]string{"user": "bob", "server": "gpu"}); ok {
		t.Error("a stopped server's usage is still exported")
	}
}

// The hub's own wiring reads each running server's cgroup at the scrape: what the unit uses is
// on /hub/metrics per user and server, as on the admin page.
func TestARunningServersCgroupIsOnTheMetrics(t *testing.T) {
	th := hubtest.New(t)
	admin := th.User("admin", true)
	alice := th.User("alice", false)
	if r := th.Do("POST", "/hub/api/users/alice/server", alice, ""); r.Status != 201 && r.Status != 202 {
		t.Fatalf("spawn = %d %s", r.Status, r.Body)
	}
	get := scraper(t, th, admin)
	eventually(t, get, "alice's server", func(f map[string]*dto.MetricFamily) bool {
		_, ok := sample(f, "jupyterhub_server_memory_bytes", map[string]string{"user": "alice", "server": ""})
		return ok
	})
	th.SetUsage("alice", 300<<20, 90*time.Second)
	fams := get()
	if v, _ := sample(fams, "jupyterhub_server_memory_bytes", map[string]string{"user": "alice", "server": ""}); v != 300<<20 {
		t.Errorf("memory = %v, want the cgroup's %d", v, 300<<20)
	}
	if v, _ := sample(fams, "jupyterhub_server_cpu_seconds_total", map[string]string{"user": "alice", "server": ""}); v != 90 {
		t.Errorf("cpu = %v s, want 90", v)
	}
}
