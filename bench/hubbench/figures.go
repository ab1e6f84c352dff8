package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

func (b *bench) both() []*hub { return []*hub{b.goHub, b.pyHub} }

func (b *bench) rss(ctx context.Context, label, goal string) error {
	var v [2]float64
	for i, h := range b.both() {
		ps, err := h.pids(ctx)
		if err != nil {
			return err
		}
		v[i] = rssMiB(ps)
	}
	b.add(row{fig: label, gov: f1(v[0]), peer: f1(v[1]), ratio: "1/" + f1(v[1]/v[0]), goal: goal})
	return nil
}

func (b *bench) rssIdle(ctx context.Context) error {
	return b.rss(ctx, "idle RSS MiB (hub; hub + CHP)", "<= 1/5")
}

func (b *bench) rssLoaded(ctx context.Context) error {
	return b.rss(ctx, "RSS MiB after the API load", "")
}

// serverState reads whether the user's default server is ready, pending or absent.
func (h *hub) serverState(ctx context.Context, user string) (ready, exists bool, err error) {
	st, body, err := h.call(ctx, "GET", "/users/"+user, nil)
	if err != nil || st != 200 {
		return false, false, fmt.Errorf("GET user %s on %s = %d %s: %v", user, h.kind, st, body, err)
	}
	var m struct {
		Servers map[string]struct {
			Ready   bool    `json:"ready"`
			Pending *string `json:"pending"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return false, false, err
	}
	s, ok := m.Servers[""]
	return ok && s.Ready && s.Pending == nil, ok, nil
}

// startServer asks for the user's server and waits, polling every 2 ms, until the hub calls it
// ready; it returns how long that took.
func (h *hub) startServer(ctx context.Context, user string) (time.Duration, error) {
	t0 := time.Now()
	st, body, err := h.call(ctx, "POST", "/users/"+user+"/server", nil)
	if err != nil {
		return 0, err
	}
	switch st {
	case 201:
		return time.Since(t0), nil
	case 202:
	default:
		return 0, fmt.Errorf("start %s's server on %s = %d %s", user, h.kind, st, body)
	}
	for deadline := t0.Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		ready, _, err := h.serverState(ctx, user)
		if err != nil {
			return 0, err
		}
		if ready {
			return time.Since(t0), nil
		}
	}
	return 0, fmt.Errorf("%s's server on %s not ready after 60s", user, h.kind)
}

func (h *hub) stopServer(ctx context.Context, user string) error {
	st, body, err := h.call(ctx, "DELETE", "/users/"+user+"/server", nil)
	if err != nil {
		return err
	}
	if st != 202 && st != 204 {
		return fmt.Errorf("stop %s's server on %s = %d %s", user, h.kind, st, body)
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, exists, err := h.serverState(ctx, user); err != nil || !exists {
			return err
		}
	}
	return fmt.Errorf("%s's server on %s still there after 60s", user, h.kind)
}

// ownStart is how long the backend takes, started directly, from exec to accepting a
// connection: the part of a spawn no hub can save.
func (b *bench) ownStart(ctx context.Context) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, b.backend, "-listen", addr, "-prefix", "/")
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the backend: %w", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for time.Since(t0) < 10*time.Second {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return time.Since(t0), nil
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, fmt.Errorf("the backend did not listen on %s within 10s", addr)
}

func (b *bench) spawn(ctx context.Context) error {
	own, err := b.ownStart(ctx)
	if err != nil {
		return err
	}
	if err := b.stopServers(ctx); err != nil {
		return err
	}
	med, err := interleave(b.reps, []string{"go", "py"}, func(t string) ([]float64, error) {
		return b.spawnOnce(ctx, t)
	})
	if err != nil {
		return err
	}
	g, p := med[0][0]-ms(own), med[1][0]-ms(own)
	b.add(row{fig: fmt.Sprintf("spawn overhead ms (own start %.1f ms)", ms(own)), gov: f1(g), peer: f1(p), ratio: x(p / g), goal: "<= 50 ms"})
	return b.serversUp(ctx)
}

// serversUp starts the bench user's server on each hub where it is not running: the data-path
// figures measure it, and with BENCH_ONLY they may run without the spawn figures before them.
func (b *bench) serversUp(ctx context.Context) error {
	for _, h := range b.both() {
		ready, _, err := h.serverState(ctx, b.user)
		if err != nil {
			return err
		}
		if ready {
			continue
		}
		if _, err := h.startServer(ctx, b.user); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) hub(t string) *hub {
	if t == "go" {
		return b.goHub
	}
	return b.pyHub
}

// create adds 1,000 users in one request on each hub.
func (b *bench) create(ctx context.Context) error {
	var secs [2]float64
	for i, h := range b.both() {
		names := make([]string, 1000)
		for j := range names {
			names[j] = fmt.Sprintf("bench%04d", j)
		}
		t0 := time.Now()
		st, body, err := h.call(ctx, "POST", "/users", map[string]any{"usernames": names})
		if err != nil {
			return err
		}
		if st != 201 {
			return fmt.Errorf("create 1000 users on %s = %d %.200s", h.kind, st, body)
		}
		secs[i] = time.Since(t0).Seconds()
	}
	b.add(row{fig: "create 1000 users s (one POST)", gov: f2(secs[0]), peer: f2(secs[1]), ratio: x(secs[1] / secs[0]), goal: ""})
	return nil
}

// load runs hammer on both hubs' API (or the router) interleaved and adds req/s, p50, p99 rows.
func (b *bench) loadRows(ctx context.Context, label, goal string, urls map[string]string, tokens map[string]string, c int) ([][]float64, error) {
	targets := make([]string, 0, len(urls))
	for _, t := range []string{"go", "py", "direct"} {
		if _, ok := urls[t]; ok {
			targets = append(targets, t)
		}
	}
	return interleave(b.reps, targets, func(t string) ([]float64, error) {
		r, err := hammer(ctx, urls[t], tokens[t], c, b.dur)
		if err != nil {
			return nil, err
		}
		return []float64{r.RPS, ms(r.P50), ms(r.P99), float64(r.Bytes) / r.Span / (1 << 20)}, nil
	})
}

func (b *bench) apiRows(ctx context.Context, label, goal, path string, c int) error {
	urls := map[string]string{"go": b.goHub.api + path, "py": b.pyHub.api + path}
	toks := map[string]string{"go": b.goHub.token, "py": b.pyHub.token}
	m, err := b.loadRows(ctx, label, goal, urls, toks, c)
	if err != nil {
		return err
	}
	g, p := m[0], m[1]
	b.add(row{fig: label + " req/s", gov: f0(g[0]), peer: f1(p[0]), ratio: x(g[0] / p[0]), goal: goal})
	b.add(row{fig: label + " p50 ms", gov: f2(g[1]), peer: f1(p[1]), ratio: x(p[1] / g[1]), goal: ""})
	b.add(row{fig: label + " p99 ms", gov: f2(g[2]), peer: f1(p[2]), ratio: x(p[2] / g[2]), goal: ""})
	return nil
}

func (b *bench) list(ctx context.Context) error {
	for _, size := range []int{200, 1000} {
		for _, c := range []int{4, 32} {
			if err := b.apiRows(ctx, fmt.Sprintf("users list limit=%d c=%d", size, c), ">= 20x",
				fmt.Sprintf("/users?limit=%d", size), c); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *bench) getUser(ctx context.Context) error {
	return b.apiRows(ctx, "one user GET c=4", ">= 30x", "/users/"+b.user, 4)
}

// router measures /user/<name>/ through each hub's proxy and directly, and the CPU each proxy
// process spends per request (jupyterhub-go: the hub; JupyterHub: CHP alone, the hub is idle).
func (b *bench) router(ctx context.Context) error {
	if err := b.serversUp(ctx); err != nil {
		return err
	}
	pre := "/user/" + b.user + "/"
	for _, c := range []int{4, 32} {
		urls := map[string]string{"go": b.goHub.public + pre, "py": b.pyHub.public + pre, "direct": b.direct}
		m, err := b.loadRows(ctx, "", "", urls, nil, c)
		if err != nil {
			return err
		}
		g, p, d := m[0], m[1], m[2]
		lbl := fmt.Sprintf("router 1 KiB c=%d", c)
		b.add(row{fig: lbl + " req/s vs CHP", gov: f0(g[0]), peer: f0(p[0]), ratio: x(g[0] / p[0]), goal: ">= 15x"})
		b.add(row{fig: lbl + " req/s vs direct", gov: f0(g[0]), peer: f0(d[0]), ratio: x(g[0] / d[0]), goal: ">= 0.45x"})
		b.add(row{fig: lbl + " p99 ms (peer: CHP)", gov: f2(g[2]), peer: f2(p[2]), ratio: x(p[2] / g[2]), goal: ""})
	}
	urls := map[string]string{"go": b.goHub.public + pre + "1m", "py": b.pyHub.public + pre + "1m", "direct": b.direct + "1m"}
	m, err := b.loadRows(ctx, "", "", urls, nil, 4)
	if err != nil {
		return err
	}
	g, p, d := m[0], m[1], m[2]
	b.add(row{fig: "router 1 MiB c=4 MiB/s vs CHP", gov: f0(g[3]), peer: f0(p[3]), ratio: x(g[3] / p[3]), goal: ""})
	b.add(row{fig: "router 1 MiB c=4 MiB/s vs direct", gov: f0(g[3]), peer: f0(d[3]), ratio: x(g[3] / d[3]), goal: ">= 0.9x"})

	// CPU per request: one run each at c=4, ticks of the proxying processes before and after.
	var per [2]float64
	for i, h := range b.both() {
		ps, err := h.pids(ctx)
		if err != nil {
			return err
		}
		if h.kind == "py" {
			ps = ps[len(ps)-1:] // hook order: hub, then CHP
		}
		t0 := cpuTicks(ps)
		r, err := hammer(ctx, h.public+pre, "", 4, b.dur)
		if err != nil {
			return err
		}
		per[i] = float64(cpuTicks(ps)-t0) * 1e4 / float64(r.N) // ticks are 10 ms: us per request
	}
	b.add(row{fig: "proxy CPU us per 1 KiB request (peer: CHP)", gov: f1(per[0]), peer: f1(per[1]), ratio: x(per[1] / per[0]), goal: ""})
	return nil
}

func wsURL(u string) string { return "ws" + strings.TrimPrefix(u, "http") }

func (b *bench) ws(ctx context.Context) error {
	if err := b.serversUp(ctx); err != nil {
		return err
	}
	pre := "/user/" + b.user + "/ws"
	for _, bulk := range []int{0, 64 << 20} {
		urls := []string{wsURL(b.goHub.public + pre), wsURL(b.pyHub.public + pre), wsURL(b.direct + "ws")}
		m, err := interleave(b.reps, []string{"0", "1", "2"}, func(t string) ([]float64, error) {
			p50, p99, err := wsRTT(ctx, urls[t[0]-'0'], 2000, bulk)
			return []float64{us(p50), us(p99)}, err
		})
		if err != nil {
			return err
		}
		g, p, d := m[0], m[1], m[2]
		sfx := ""
		if bulk > 0 {
			sfx = " after 64 MiB"
		}
		b.add(row{fig: "WebSocket RTT p50 us vs CHP" + sfx, gov: f1(g[0]), peer: f1(p[0]), ratio: x(p[0] / g[0]), goal: ""})
		b.add(row{fig: "WebSocket RTT p50 us vs direct" + sfx, gov: f1(g[0]), peer: f1(d[0]), ratio: fmt.Sprintf("+%.1f us", g[0]-d[0]), goal: "<= +10 us"})
		b.add(row{fig: "WebSocket RTT p99 us vs CHP" + sfx, gov: f1(g[1]), peer: f1(p[1]), ratio: x(p[1] / g[1]), goal: ""})
		b.add(row{fig: "WebSocket RTT p99 us vs direct" + sfx, gov: f1(g[1]), peer: f1(d[1]), ratio: x(g[1] / d[1]), goal: "<= 2x"})
	}
	return nil
}

// startup fills each hub to 10,000 more users, stops it and measures from the hub process's
// start to its API answering (for JupyterHub, through CHP, which it starts). The clock starts
// at the process's own start time in /proc, not when the hook was called, so that entering the
// guest and systemd-run are not counted: 10 ms resolution, like the kernel's.
func (b *bench) startup(ctx context.Context) error {
	var secs [2]float64
	for i, h := range b.both() {
		if _, err := runHook(ctx, h.hook, "fill", h.kind, "10000"); err != nil {
			return err
		}
		if _, err := runHook(ctx, h.hook, "stop", h.kind); err != nil {
			return err
		}
		// The API is polled while the start hook still runs: the hook (sh, nsenter, systemd-run)
		// may return well after the hub's process started, later than the hub answers on a
		// loaded host, and waiting for it would count its exit in the hub's start-up.
		t0 := time.Now()
		launched := make(chan error, 1)
		go func() { _, err := runHook(ctx, h.hook, "start", h.kind); launched <- err }()
		url := h.api + "/"
		if h.kind == "py" {
			url = h.public + "/hub/api/"
		}
		for {
			if time.Since(t0) > 120*time.Second {
				return fmt.Errorf("%s did not answer %s within 120s of its start", h.kind, url)
			}
			if r, err := hammerOnce(ctx, url); err == nil && r == 200 {
				break
			}
			select {
			case err := <-launched:
				if err != nil {
					return err
				}
				launched = nil // returned; a nil channel is never ready
			case <-time.After(2 * time.Millisecond):
			}
		}
		up := uptime()
		if launched != nil {
			if err := <-launched; err != nil {
				return err
			}
		}
		ps, err := h.pids(ctx)
		if err != nil {
			return err
		}
		started := startTime(ps[0])
		if started <= 0 || up <= 0 {
			return fmt.Errorf("no start time for %s's process %d", h.kind, ps[0])
		}
		secs[i] = up - started
	}
	b.add(row{fig: "start-up with 10,000 users s (process to API)", gov: f2(secs[0]), peer: f2(secs[1]), ratio: x(secs[1] / secs[0]), goal: "<= 0.2 s"})
	return nil
}

// spawnMany starts the servers of 20 users (guest.sh made their accounts) at once and waits
// until all are ready, then stops them all.
func (b *bench) spawnMany(ctx context.Context) error {
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("spawn%02d", i+1)
	}
	for _, h := range b.both() {
		if st, body, err := h.call(ctx, "POST", "/users", map[string]any{"usernames": names}); err != nil || (st != 201 && st != 409) {
			return fmt.Errorf("create the spawn users on %s = %d %.200s: %v", h.kind, st, body, err)
		}
	}
	all := func(h *hub, f func(string) error) error {
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		for i, n := range names {
			wg.Go(func() { errs[i] = f(n) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
	med, err := interleave(b.reps, []string{"go", "py"}, func(t string) ([]float64, error) {
		h := b.hub(t)
		t0 := time.Now()
		if err := all(h, func(n string) error { _, err := h.startServer(ctx, n); return err }); err != nil {
			return nil, err
		}
		d := time.Since(t0)
		if err := all(h, func(n string) error { return h.stopServer(ctx, n) }); err != nil {
			return nil, err
		}
		return []float64{d.Seconds()}, nil
	})
	if err != nil {
		return err
	}
	b.add(row{fig: "20 concurrent spawns s (until all ready)", gov: f2(med[0][0]), peer: f2(med[1][0]), ratio: x(med[1][0] / med[0][0]), goal: ""})
	return nil
}

// ownSingleuser is how long jupyterhub-singleuser takes on its own in the guest (the hook
// starts it as alice with a hub's environment), from exec to answering HTTP as the hubs check
// it: the part of a real spawn no hub can save. The clock starts at the time its unit wrote down
// just before exec, so entering the guest and starting the unit are not counted.
func (b *bench) ownSingleuser(ctx context.Context) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	hook := b.goHub.hook
	if _, err := runHook(ctx, hook, "own-singleuser", "start", port); err != nil {
		return 0, err
	}
	defer runHook(context.WithoutCancel(ctx), hook, "own-singleuser", "stop", port)
	probe := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	u := "http://127.0.0.1:" + port + "/user/alice/"
	for began := time.Now(); time.Since(began) < 60*time.Second; time.Sleep(time.Millisecond) {
		resp, err := probe.Get(u)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			continue
		}
		up := time.Now()
		out, err := runHook(ctx, hook, "own-singleuser", "t0", port)
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(out, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("the singleuser hook wrote %q, not its start time", out)
		}
		return up.Sub(time.Unix(0, ns)), nil
	}
	return 0, fmt.Errorf("the singleuser server did not answer at %s within 60s", u)
}

// spawnSingleuser is the spawn overhead with the real jupyterhub-singleuser: both hubs are
// switched to spawning it (and restarted), and its own start is measured between their spawns,
// interleaved with them, so that all three see the same load. Both hubs go back to the backend
// afterwards, for the figures that need it.
func (b *bench) spawnSingleuser(ctx context.Context) (err error) {
	if err := b.stopServers(ctx); err != nil {
		return err
	}
	for _, h := range b.both() {
		if _, err := runHook(ctx, h.hook, "set-cmd", h.kind, "singleuser"); err != nil {
			return err
		}
	}
	defer func() {
		for _, h := range b.both() {
			_, berr := runHook(ctx, h.hook, "set-cmd", h.kind, "backend")
			err = errors.Join(err, berr)
		}
	}()
	// A Python server's start spreads over a second and more on a busy machine, ten times the
	// overhead looked for: at least five runs each, so that the medians are worth comparing.
	med, err := interleave(max(b.reps, 5), []string{"go", "py", "own"}, func(t string) ([]float64, error) {
		if t == "own" {
			d, err := b.ownSingleuser(ctx)
			return []float64{ms(d)}, err
		}
		return b.spawnOnce(ctx, t)
	})
	if err != nil {
		return err
	}
	g, p, own := med[0][0], med[1][0], med[2][0]
	b.add(row{fig: "singleuser spawn ms (request to ready)", gov: f0(g), peer: f0(p), ratio: x(p / g), goal: ""})
	if g < own || p < own {
		// The server's own start varies from run to run by more than a hub adds to it (seen:
		// 1.3-3.9 s on a loaded 2-core host): a difference of medians says nothing then, and the
		// fast server's "spawn overhead" row is the figure to go by.
		b.add(row{fig: fmt.Sprintf("singleuser spawn overhead ms (own %.0f ms)", own), gov: "n/a", peer: "n/a", ratio: "-", goal: "<= 50 ms (own start noisier than the overhead)"})
		return nil
	}
	b.add(row{fig: fmt.Sprintf("singleuser spawn overhead ms (own %.0f ms)", own), gov: f1(g - own), peer: f1(p - own), ratio: x((p - own) / (g - own)), goal: "<= 50 ms"})
	return nil
}

// stopServers stops the bench user's server on both hubs where one runs, so that a spawn figure
// starts from nothing.
func (b *bench) stopServers(ctx context.Context) error {
	for _, h := range b.both() {
		if _, exists, err := h.serverState(ctx, b.user); err == nil && exists {
			if err := h.stopServer(ctx, b.user); err != nil {
				return err
			}
		}
	}
	return nil
}

// spawnOnce starts the bench user's server on one hub and stops it again: the milliseconds
// from the request to ready, as one sample for interleave.
func (b *bench) spawnOnce(ctx context.Context, kind string) ([]float64, error) {
	h := b.hub(kind)
	d, err := h.startServer(ctx, b.user)
	if err != nil {
		return nil, err
	}
	if err := h.stopServer(ctx, b.user); err != nil {
		return nil, err
	}
	return []float64{ms(d)}, nil
}
