// Command hubbench measures jupyterhub-go and Python JupyterHub side by side, figure by figure
// and interleaved, and prints one table. bench/run.sh starts both hubs in a systemd-nspawn guest
// and runs it; it reaches the guest only through HTTP and the -hook command (pids of each hub,
// stop/start, filling a hub's database), so it knows nothing of nspawn.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// hub is one of the two hubs under test.
type hub struct {
	kind   string // "go" or "py": the word the hook is called with
	api    string // e.g. http://127.0.0.1:18100/hub/api
	public string // where /user/<name>/ is served: the hub itself, or CHP
	token  string
	hook   string
}

func (h *hub) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.api+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "token "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s on %s: %w", method, path, h.kind, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// runHook runs "hook WORDS..." and returns its trimmed output.
func runHook(ctx context.Context, hook string, words ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", hook+" "+strings.Join(words, " ")).Output()
	if err != nil {
		return "", fmt.Errorf("hook %s: %w", strings.Join(words, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (h *hub) pids(ctx context.Context) ([]int, error) {
	out, err := runHook(ctx, h.hook, "pids", h.kind)
	if err != nil {
		return nil, err
	}
	var ps []int
	for _, f := range strings.Fields(out) {
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("hook pids %s printed %q", h.kind, out)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("hook pids %s found no process", h.kind)
	}
	return ps, nil
}

// rssMiB is the resident memory of the processes together.
func rssMiB(pids []int) float64 {
	kb := 0
	for _, p := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				n, _ := strconv.Atoi(f[1])
				kb += n
			}
		}
	}
	return float64(kb) / 1024
}

// cpuTicks is user+system CPU of the processes together, in clock ticks (1/100 s on Linux).
func cpuTicks(pids []int) int {
	t := 0
	for _, p := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		s := string(b)
		// comm may hold spaces: the fields after it start past the last ')'.
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 13 {
			u, _ := strconv.Atoi(f[11])
			k, _ := strconv.Atoi(f[12])
			t += u + k
		}
	}
	return t
}

// uptime is the seconds since boot, the clock of startTime.
func uptime() float64 {
	b, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// startTime is when the process started, in seconds since boot.
func startTime(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0
	}
	t, _ := strconv.ParseFloat(f[19], 64) // field 22 of stat; f[0] is field 3
	return t / 100
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// row is one line of the table.
type row struct{ fig, gov, peer, ratio, goal, load string }

type bench struct {
	log     *slog.Logger
	goHub   *hub
	pyHub   *hub
	direct  string // the backend on its own, e.g. http://127.0.0.1:18200/user/alice/
	backend string // the backend binary, for its own start-up time
	user    string
	dur     time.Duration
	reps    int
	rows    []row
}

func (b *bench) add(r row) {
	r.load = loadavg()
	b.rows = append(b.rows, r)
	fmt.Fprintf(os.Stderr, "  %-44s %14s %14s %10s %10s\n", r.fig, r.gov, r.peer, r.ratio, r.goal)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// interleave runs f for each target reps times, alternating which goes first, and returns the
// median of each target's results, index by index.
func interleave(reps int, targets []string, f func(target string) ([]float64, error)) ([][]float64, error) {
	got := make([][][]float64, len(targets))
	for rep := range reps {
		order := make([]int, len(targets))
		for i := range order {
			order[i] = i
		}
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			v, err := f(targets[i])
			if err != nil {
				return nil, err
			}
			got[i] = append(got[i], v)
		}
	}
	out := make([][]float64, len(targets))
	for i, runs := range got {
		for j := range runs[0] {
			col := make([]float64, len(runs))
			for k := range runs {
				col[k] = runs[k][j]
			}
			out[i] = append(out[i], median(col))
		}
	}
	return out, nil
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
func x(v float64) string {
	if v >= 10 {
		return f0(v) + "x"
	}
	return f2(v) + "x"
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
func us(d time.Duration) float64 { return float64(d) / 1e3 }

func main() {
	var b bench
	var goTok, pyTok, hook string
	goHub := &hub{kind: "go"}
	pyHub := &hub{kind: "py"}
	flag.StringVar(&goHub.api, "go-api", "http://127.0.0.1:18100/hub/api", "jupyterhub-go's API")
	flag.StringVar(&goHub.public, "go-public", "http://127.0.0.1:18100", "jupyterhub-go's public URL")
	flag.StringVar(&pyHub.api, "py-api", "http://127.0.0.1:18081/hub/api", "JupyterHub's API (the hub's own port)")
	flag.StringVar(&pyHub.public, "py-public", "http://127.0.0.1:18000", "JupyterHub's public URL (CHP)")
	flag.StringVar(&goTok, "go-token", os.Getenv("BENCH_GO_TOKEN"), "admin token of jupyterhub-go")
	flag.StringVar(&pyTok, "py-token", os.Getenv("BENCH_PY_TOKEN"), "admin token of JupyterHub")
	flag.StringVar(&hook, "hook", "", "command run as: HOOK pids|stop|start|fill go|py [N]")
	flag.StringVar(&b.direct, "direct", "http://127.0.0.1:18200/user/alice/", "the backend without a proxy")
	flag.StringVar(&b.backend, "backend", "", "the backend binary (for its own start-up time)")
	flag.StringVar(&b.user, "user", "alice", "the user whose server is spawned")
	flag.DurationVar(&b.dur, "d", 5*time.Second, "duration of each load run")
	flag.IntVar(&b.reps, "reps", 3, "runs per figure and target (the median is shown)")
	only := flag.String("only", "", "comma-separated figure groups to run (default all)")
	flag.Parse()
	goHub.token, pyHub.token, goHub.hook, pyHub.hook = goTok, pyTok, hook, hook
	b.goHub, b.pyHub = goHub, pyHub
	b.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx := context.Background()

	// spawn-singleuser comes before spawn: it restarts both hubs, and JupyterHub stops its
	// servers when it stops, so the backend spawn must come after it.
	groups := []struct {
		name string
		f    func(context.Context) error
	}{
		{"rss-idle", b.rssIdle}, {"spawn-singleuser", b.spawnSingleuser}, {"spawn", b.spawn}, {"spawn20", b.spawnMany}, {"create", b.create}, {"list", b.list},
		{"get", b.getUser}, {"rss-loaded", b.rssLoaded}, {"router", b.router}, {"ws", b.ws},
		{"startup", b.startup},
	}
	for _, g := range groups {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), g.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "[hubbench %s] %s\n", time.Now().Format("15:04:05"), g.name)
		if err := g.f(ctx); err != nil {
			b.log.Error("figure failed; going on with the next", "group", g.name, "err", err)
			b.add(row{fig: g.name + ": FAILED", gov: "-", peer: "-", ratio: "-", goal: "-"})
		}
	}
	b.print()
}

func (b *bench) print() {
	w := os.Stdout
	fmt.Fprintf(w, "\n%-46s %14s %16s %10s %12s %6s\n", "figure", "jupyterhub-go", "JupyterHub 5.2.1", "ratio", "goal", "load")
	fmt.Fprintln(w, strings.Repeat("-", 46+14+16+10+12+6+5))
	for _, r := range b.rows {
		fmt.Fprintf(w, "%-46s %14s %16s %10s %12s %6s\n", r.fig, r.gov, r.peer, r.ratio, r.goal, r.load)
	}
	fmt.Fprintln(w, "\nratio: how many times better jupyterhub-go is (higher is better), except rows marked \"vs direct\", where it is")
	fmt.Fprintln(w, "jupyterhub-go's share of the bare backend (the peer column then holds the direct figure). load: 1-minute load average.")
}
