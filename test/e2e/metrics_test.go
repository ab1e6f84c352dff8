package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsCountRealSpawnsAndStops scrapes /hub/metrics of a hub whose servers are real units:
// one server started and stopped, one that cannot start (a hub user with no Unix account), and
// the counts, spawn and stop durations and requests by route say so.
func TestMetricsCountRealSpawnsAndStops(t *testing.T) {
	onlyOn(t, "trixie")
	dir := t.TempDir()
	const addr = "127.0.0.1:8015"
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
[spawner]
unit_prefix = "jhgo-e2e-mx"
start_timeout = "240s"
`, addr, dir+"/data"))
	h := startHub(t, cfg, addr)
	out, err := exec.Command(h.cmd.Path, "--config", cfg, "token", "create", "--user", "mxadmin", "--create", "--admin").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	admin := strings.TrimSpace(string(out))
	call := func(method, path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "token "+token)
		}
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		code, body := call("GET", "/hub/metrics", admin)
		if code != 200 {
			t.Fatalf("scrape = %d %s", code, body)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("metrics do not parse: %v\n%s", err, body)
		}
		return fams
	}
	// value is a gauge's value or a histogram's count, for the series with exactly these labels.
	value := func(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
		for _, m := range fams[name].GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			match := len(got) == len(labels)/2
			for i := 0; i+1 < len(labels); i += 2 {
				match = match && got[labels[i]] == labels[i+1]
			}
			if match {
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetGauge().GetValue()
			}
		}
		return -1
	}
	until := func(what string, timeout time.Duration, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			fams := scrape()
			if cond(fams) {
				return fams
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never showed in the metrics", what)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	if code, _ := call("GET", "/hub/metrics", ""); code != 403 {
		t.Errorf("scrape without a token = %d, want 403 (read:metrics)", code)
	}
	for _, name := range []string{"alice", "mx-ghost"} {
		if code, body := call("POST", "/hub/api/users/"+name, admin); code != 201 {
			t.Fatalf("create %s = %d %s", name, code, body)
		}
	}
	if code, body := call("POST", "/hub/api/users/alice/server", admin); code != 201 && code != 202 {
		t.Fatalf("start alice's server = %d %s", code, body)
	}
	const spawns = "jupyterhub_server_spawn_duration_seconds"
	fams := until("alice's spawn", 240*time.Second, func(f map[string]*dto.MetricFamily) bool { return value(f, spawns, "status", "success") == 1 })
	if n := value(fams, "jupyterhub_running_servers"); n != 1 {
		t.Errorf("running_servers = %v with alice's server up", n)
	}
	if n := value(fams, "jupyterhub_server_poll_duration_seconds", "status", "running"); n < 1 {
		t.Errorf("no poll of the unit while jupyterhub-singleuser started (%v)", n)
	}
	// No Unix account: the unit step refuses, after the hub's own credentials step ran.
	if code, body := call("POST", "/hub/api/users/mx-ghost/server", admin); code != 202 && code != 500 {
		t.Fatalf("start mx-ghost's server = %d %s", code, body)
	}
	fams = until("mx-ghost's failed spawn", 60*time.Second, func(f map[string]*dto.MetricFamily) bool { return value(f, spawns, "status", "failure") == 1 })
	if n := value(fams, "jupyterhub_total_users"); n != 3 {
		t.Errorf("total_users = %v, want 3 (mxadmin, alice, mx-ghost)", n)
	}
	if n := value(fams, "jupyterhub_check_routes_duration_seconds"); n != 1 {
		t.Errorf("check_routes_duration_seconds counted %v reconciles, want the one at start", n)
	}
	if code, body := call("DELETE", "/hub/api/users/alice/server", admin); code != 202 && code != 204 {
		t.Fatalf("stop alice's server = %d %s", code, body)
	}
	fams = until("alice's stop", 60*time.Second, func(f map[string]*dto.MetricFamily) bool {
		return value(f, "jupyterhub_server_stop_seconds", "status", "success") == 1
	})
	if n := value(fams, "jupyterhub_running_servers"); n != 0 {
		t.Errorf("running_servers = %v after the stop", n)
	}
	if n := value(fams, "jupyterhub_request_duration_seconds", "method", "POST", "handler", "/hub/api/users/{name}", "code", "201"); n != 2 {
		t.Errorf("user creations counted %v times under their route, want 2", n)
	}
}
