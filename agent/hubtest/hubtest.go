// Package hubtest runs a whole hub for the tests of its HTTP surfaces: real wiring, a real sqlite
// store in a temporary data dir, served on loopback. Servers are "spawned" through the real
// lifecycle core with a step that serves a test handler on the server's port (after the real gpu
// step, for a hub given GPUs); systemd itself is exercised by the VM suites (test/e2e).
package hubtest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent"
	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/cgroup"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

// Hub is a running test hub.
type Hub struct {
	*agent.Hub
	URL       string
	t         testing.TB
	units     *Units
	passwords *Passwords
}

// New starts a hub with the default configuration, changed by opts. Tests log users in with
// Login, or through the login form with a password set by SetPassword.
func New(t testing.TB, opts ...func(*config.Config)) *Hub {
	t.Helper()
	return NewWith(t, Options{Config: opts})
}

// Options are what NewWith changes in the hub New makes.
type Options struct {
	Config []func(*config.Config)
	// GPUs gives the hub the GPUs of this NVML (over one of go-nvml's mocks, say) through the
	// real allocator and gpu step, wired as agent.Open wires them, with the [gpu] section of the
	// configuration. nil is a hub without GPUs, whose servers' requests for them go unread.
	GPUs *gpu.NVML
	// AfterStep is servers.Options.AfterStep: a test that calls runtime.Goexit from it ends
	// that spawn or stop there, as a hub SIGKILLed at that point would.
	AfterStep func(step, half string)
	// Steps run before the stand-in unit (and after the gpu step), as a concern's steps do: a
	// test's step that fails a spawn, say.
	Steps []servers.Step
}

// NewWith is New with more changed than the configuration.
func NewWith(t testing.TB, o Options) *Hub {
	t.Helper()
	cfg := config.Default()
	cfg.Hub.DataDir = t.TempDir()
	cfg.Hub.MaxBodyBytes = 4096
	cfg.Hub.ProxySocket = "" // tests that want one choose a path short enough for a unix socket
	for _, f := range o.Config {
		f(&cfg)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	units, passwords := NewUnits(), &Passwords{m: map[string]string{}}
	// Each stand-in unit gets a cgroup in a fake tree, read by the real reader the hub uses.
	units.cgroups, units.slice = t.TempDir(), cfg.Spawner.Slice
	deps := agent.Deps{Auth: passwords, Units: units, Steps: append(slices.Clip(o.Steps), units.Step()), Logger: log,
		Usage: agent.CgroupUsage(units.cgroups, cfg.Spawner.Slice)}
	if o.GPUs != nil {
		st, err := agent.OpenStore(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		alloc, err := agent.NewAllocator(ctx, cfg, st, o.GPUs, log)
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		deps.Store, deps.GPUs = st, alloc
		deps.Steps = append([]servers.Step{gpu.NewStep(alloc, log)}, deps.Steps...)
	}
	deps.AfterStep = o.AfterStep
	h, err := agent.New(ctx, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(func() { srv.Close(); units.closeAll(); h.Close() })
	return &Hub{Hub: h, URL: srv.URL, t: t, units: units, passwords: passwords}
}

// SetPassword lets name log in through the login form with password.
func (h *Hub) SetPassword(name, password string) {
	h.passwords.mu.Lock()
	defer h.passwords.mu.Unlock()
	h.passwords.m[name] = password
}

// Passwords stands in for PAM (tested for real in pam/ and in the VM): a fixed table.
type Passwords struct {
	mu sync.Mutex
	m  map[string]string
}

// Authenticate checks the table.
func (p *Passwords) Authenticate(ctx context.Context, name, password string) (auth.Identity, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if want, ok := p.m[name]; !ok || want != password {
		return auth.Identity{}, auth.ErrBadLogin
	}
	return auth.Identity{Name: name}, nil
}

// User creates a user and returns an API token that inherits their scopes.
func (h *Hub) User(name string, admin bool) string {
	h.t.Helper()
	ctx := context.Background()
	u, err := h.Store().CreateUser(ctx, name, admin)
	if err != nil {
		h.t.Fatal(err)
	}
	_, secret, err := h.Store().CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"inherit"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return secret
}

// Token makes another API token, inheriting their scopes, for an existing user.
func (h *Hub) Token(name string) string {
	h.t.Helper()
	ctx := context.Background()
	u, err := h.Store().GetUser(ctx, name)
	if err != nil {
		h.t.Fatal(err)
	}
	_, secret, err := h.Store().CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"inherit"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return secret
}

// Login gives a cookie for a new login session of user name, as the login page would.
func (h *Hub) Login(name string) *http.Cookie {
	h.t.Helper()
	u, err := h.Store().GetUser(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	_, secret, err := h.Store().CreateSession(context.Background(), store.Session{UserID: u.ID}, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return &http.Cookie{Name: auth.LoginCookie, Value: h.Gate().Sign(secret)}
}

// Reply is an HTTP response, read whole.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes a reply that must be a JSON object.
func (r Reply) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("not a JSON object (%d): %s", r.Status, r.Body)
	}
	return m
}

// Do sends a request to a path (or an absolute URL) with an optional token and JSON body, and
// header name/value pairs; it does not follow redirects.
func (h *Hub) Do(method, path, token, body string, hdr ...string) Reply {
	h.t.Helper()
	target := h.URL + path
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		target = path // an absolute URL the hub handed out, such as a next page
	}
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1] // the client sends req.Host, not a Host header
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Reply{resp.StatusCode, resp.Header, b}
}

// Serve starts user's default server through the lifecycle core, with handler standing in for
// jupyterhub-singleuser, and returns once the router routes to it. The user is created if needed.
func (h *Hub) Serve(user string, handler http.Handler) {
	h.t.Helper()
	h.ServeNamed(user, "", handler)
}

// ServeNamed is Serve for one of user's named servers ("" is the default one); the hub must
// allow named servers (hub.allow_named_servers) for a name.
func (h *Hub) ServeNamed(user, server string, handler http.Handler) {
	h.t.Helper()
	ctx := context.Background()
	u, err := h.Store().GetUser(ctx, user)
	if err != nil {
		h.User(user, false)
		u, _ = h.Store().GetUser(ctx, user)
	}
	h.units.handle(unitKey(user, server), handler)
	prog, err := h.Servers().Start(u, server, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	select {
	case <-prog.Finished():
	case <-time.After(30 * time.Second):
		h.t.Fatal("the test server did not become ready")
	}
	if ev := prog.Last(); !ev.Ready {
		h.t.Fatalf("spawn failed: %s", ev.Message)
	}
	h.units.ready(unitKey(user, server))
}

// unitKey is how the stand-in keys what a server serves: "alice/" for alice's default server.
func unitKey(user, server string) string { return user + "/" + server }

// Units stands in for systemd in these tests: it is the spawn pipeline's last step (the "unit" is
// an HTTP server on the server's port) and the core's view of which units run.
type Units struct {
	cgroups  string // root of the fake cgroup tree ("": none)
	slice    string
	mu       sync.Mutex
	handlers map[string]http.Handler // unitKey → what the server serves
	running  map[string]*unit        // unit name → server
	units    map[string]string       // unitKey → unit name
	jobs     map[string]servers.Job  // user → the job their last server started with
}

type unit struct {
	srv   *http.Server
	ready atomic.Bool // until the core has seen it answer, every request is its readiness probe
}

// NewUnits makes an empty stand-in.
func NewUnits() *Units {
	return &Units{handlers: map[string]http.Handler{}, running: map[string]*unit{}, units: map[string]string{}, jobs: map[string]servers.Job{}}
}

func (u *Units) handle(key string, h http.Handler) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.handlers[key] = h
}

func (u *Units) ready(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if un := u.running[u.units[key]]; un != nil {
		un.ready.Store(true)
	}
}

// Step is the spawn step that starts a stand-in unit.
func (u *Units) Step() servers.Step { return unitStep{u} }

type unitStep struct{ u *Units }

func (unitStep) Name() string { return "unit" }

func (s unitStep) Stop(ctx context.Context, sv store.Server) error { return s.u.Stop(ctx, sv.Unit) }

func (s unitStep) Start(ctx context.Context, job *servers.Job) error {
	u := s.u
	u.mu.Lock()
	defer u.mu.Unlock()
	key := unitKey(job.User.Name, job.Server.Name)
	h := u.handlers[key]
	if h == nil {
		h = http.NotFoundHandler()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(job.Server.Port)))
	if err != nil {
		return err
	}
	un := &unit{}
	un.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !un.ready.Load() {
			return // 200 to the readiness probe
		}
		h.ServeHTTP(w, r)
	})}
	go un.srv.Serve(ln)
	if err := u.writeUsage(job.Server.Unit, 40<<20, 0); err != nil {
		un.srv.Close()
		return err
	}
	u.running[job.Server.Unit] = un
	u.units[key] = job.Server.Unit
	u.jobs[job.User.Name] = *job
	return nil
}

// LastJob is the job user's last server reached the unit step with: what the steps before it
// (a profile, the gpu step) left for the unit.
func (h *Hub) LastJob(user string) (servers.Job, bool) {
	h.units.mu.Lock()
	defer h.units.mu.Unlock()
	j, ok := h.units.jobs[user]
	return j, ok
}

// Stop stops a stand-in unit.
func (u *Units) Stop(ctx context.Context, name string) error {
	u.mu.Lock()
	un := u.running[name]
	delete(u.running, name)
	u.mu.Unlock()
	if un != nil {
		un.srv.Close()
	}
	if u.cgroups != "" {
		os.RemoveAll(filepath.Join(u.cgroups, cgroup.UnitPath(u.slice, name)))
	}
	return nil
}

// writeUsage writes a stand-in unit's cgroup files, as the kernel keeps them.
func (u *Units) writeUsage(unit string, memory uint64, cpu time.Duration) error {
	if u.cgroups == "" {
		return nil
	}
	dir := filepath.Join(u.cgroups, cgroup.UnitPath(u.slice, unit))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.current"), []byte(strconv.FormatUint(memory, 10)+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cpu.stat"), []byte("usage_usec "+strconv.FormatInt(cpu.Microseconds(), 10)+"\nuser_usec 0\nsystem_usec 0\n"), 0o644)
}

// SetUsage sets what user's running server uses, as its cgroup would show it.
func (h *Hub) SetUsage(user string, memory uint64, cpu time.Duration) {
	h.t.Helper()
	h.units.mu.Lock()
	unit := h.units.units[unitKey(user, "")]
	h.units.mu.Unlock()
	if err := h.units.writeUsage(unit, memory, cpu); err != nil {
		h.t.Fatal(err)
	}
}

func (u *Units) closeAll() {
	u.mu.Lock()
	names := make([]string, 0, len(u.running))
	for n := range u.running {
		names = append(names, n)
	}
	u.mu.Unlock()
	for _, n := range names {
		u.Stop(context.Background(), n)
	}
}

// List is what runs, as the core sees it after a restart.
func (u *Units) List(ctx context.Context) ([]servers.UnitState, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []servers.UnitState
	for n := range u.running {
		out = append(out, servers.UnitState{Unit: n, ActiveState: "active"})
	}
	return out, nil
}

// State says whether a stand-in unit runs.
func (u *Units) State(ctx context.Context, name string) (servers.UnitState, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.running[name] != nil {
		return servers.UnitState{Unit: name, ActiveState: "active"}, nil
	}
	return servers.UnitState{Unit: name, ActiveState: "inactive"}, nil
}

// Journal is empty: stand-in units log nothing.
func (u *Units) Journal(ctx context.Context, unit string, lines int, since time.Time) ([]string, error) {
	return nil, nil
}
