// Package agent is the jupyterhub-go daemon's wiring: it builds each concern from the
// configuration (PAM or OpenID Connect login, systemd units, GPUs), hands them to the server lifecycle
// core (agent/servers), and mounts the HTTP surfaces that call it on one mux: the REST API
// (agent/api), the pages (agent/pages), the OAuth provider for single-user servers (agent/oauth)
// and the /user/ router (agent/router), all behind the login layer (agent/auth).
//
// No handler and no lifecycle code lives here.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jupyterhub-go/jupyterhub-go/agent/api"
	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/cull"
	"github.com/jupyterhub-go/jupyterhub-go/agent/metrics"
	"github.com/jupyterhub-go/jupyterhub-go/agent/oauth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/pages"
	"github.com/jupyterhub-go/jupyterhub-go/agent/profiles"
	"github.com/jupyterhub-go/jupyterhub-go/agent/router"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
	"github.com/jupyterhub-go/jupyterhub-go/spawner"
)

// Version is the JupyterHub API level this hub implements.
const Version = web.Version

// Deps are the concerns the hub is wired to: Auth for password logins (PAM), or IdP for logins
// at an identity provider (OpenID Connect); Units, the unit manager the core reconciles with;
// Steps, the spawn pipeline after the hub's own credentials step (see spawnSteps); and GPUs, the
// allocator behind the gpu step, if the pipeline has one, for reconcile, /hub/api/gpus and the
// metrics.
type Deps struct {
	Auth   auth.Authenticator
	IdP    auth.IdentityProvider
	Units  servers.Units
	Steps  []servers.Step
	GPUs   *gpu.Allocator
	Logger *slog.Logger
	// Usage reads what a server's unit uses now (see CgroupUsage); nil shows no usage.
	Usage servers.UsageReader
	// Store is the hub's database when a concern needed it before the hub was made (the GPU
	// allocator keeps its ledger there; see OpenStore); nil opens it. The hub closes it.
	Store *store.Store
	// Close is called by Hub.Close after the store is closed (e.g. to shut NVML down).
	Close []func() error
	// AfterStep is servers.Options.AfterStep (the crash tests' seam; see crashAfter).
	AfterStep func(step, half string)
	// Collectors are concerns' metrics for /hub/metrics beside the GPUs' (Vault's admin token).
	Collectors []prometheus.Collector
}

// Hub is the running daemon.
type Hub struct {
	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	gate    *auth.Gate
	servers *servers.Manager
	gpus    *gpu.Allocator
	culler  *cull.Culler // nil with cull.enabled = false
	handler http.Handler
	// shutdown carries an API request to end the hub: true stops every server first.
	shutdown chan bool
	closers  []func() error
}

// OpenStore opens the hub's database in the data dir, creating the dir if needed.
func OpenStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	if err := os.MkdirAll(cfg.Hub.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return store.Open(ctx, filepath.Join(cfg.Hub.DataDir, "jupyterhub-go.sqlite"))
}

// New opens the hub's state under the data dir and wires the HTTP surfaces; it starts nothing.
// If it fails, it closes deps.Store and calls deps.Close too.
func New(ctx context.Context, cfg config.Config, deps Deps) (h *Hub, err error) {
	st := deps.Store
	defer func() {
		if err == nil {
			return
		}
		if st != nil {
			st.Close()
		}
		for _, c := range deps.Close {
			c()
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Hub.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	secret, err := loadSecret(filepath.Join(cfg.Hub.DataDir, "cookie_secret"))
	if err != nil {
		return nil, err
	}
	sealKey, err := loadSecret(filepath.Join(cfg.Hub.DataDir, "auth_state_key"))
	if err != nil {
		return nil, err
	}
	if st == nil {
		if st, err = OpenStore(ctx, cfg); err != nil {
			return nil, err
		}
	}
	if n := cfg.Hub.DeprecatedMetricsKey(); n != "" {
		log.Warn(n)
	}
	prefix := strings.TrimSuffix(cfg.Hub.BaseURL, "/")
	hosts := servers.NewUserHosts(cfg.Hub.SubdomainHost)
	lo, hi, _ := cfg.Spawner.Ports() // validated above
	steps := append([]servers.Step{
		servers.Credentials{Store: st, Hub: servers.HubURLs{
			Prefix: prefix, BaseURL: cfg.Hub.BaseURL, APIURL: cfg.APIURLFor(),
			PublicURL: cfg.Hub.PublicURL, DefaultURL: cfg.Spawner.DefaultURL, Hosts: hosts,
		}},
		profiles.New(cfg.Profiles).Step(), // the chosen [[profile]]'s command, env, limits and GPUs, for the steps after it
	}, deps.Steps...)
	var core *servers.Manager
	mx := metrics.New(metrics.Options{
		Users: st, Running: func() int { return len(core.Routes()) }, Collectors: append(gpuCollectors(deps.GPUs), deps.Collectors...), Logger: log,
		Usage: serverUsage(st, deps.Usage),
	})
	core = servers.New(ctx, st, deps.Units, steps, servers.Options{
		Prefix:   prefix,
		UnitName: func(user, server string) string { return spawner.UnitName(cfg.Spawner.UnitPrefix, user, server) },
		PortLow:  lo, PortHigh: hi,
		StartTimeout: cfg.Spawner.StartTimeout.D(), StopTimeout: cfg.Spawner.StopTimeout.D(), Hosts: hosts,
		Observer: mx, Usage: deps.Usage, Logger: log, AfterStep: deps.AfterStep,
		Named: servers.NamedServers{Allow: cfg.Hub.AllowNamedServers, Limit: cfg.Hub.NamedServerLimitPerUser},
	})
	var authOpts auth.Options
	if cfg.Auth.OIDC.OnLostAccess == "stop" {
		authOpts.OnAccessLost = stopServersOnLostAccess(st, core, log)
	}
	gate, err := auth.New(cfg, st, deps.IdP, secret, sealKey, log, authOpts)
	if err == nil {
		err = gate.RegisterOAuthClients(ctx)
	}
	if err != nil {
		return nil, err // the deferred cleanup closes the store
	}
	render, err := pages.NewRenderer(prefix, gate, log)
	if err != nil {
		return nil, err
	}
	apiDeps := api.Deps{Store: st, Servers: core, Gate: gate, Logger: log, Metrics: mx.Handler()}
	if deps.GPUs != nil {
		apiDeps.GPUs = gpuView{deps.GPUs}
	}
	mux := http.NewServeMux()
	h = &Hub{cfg: cfg, log: log, store: st, gate: gate, servers: core, gpus: deps.GPUs, closers: deps.Close, shutdown: make(chan bool, 1)}
	h.culler = newCuller(cfg.Cull, st, core, log)
	apiDeps.Passwords, apiDeps.Shutdown = deps.Auth, h.requestShutdown
	api.New(cfg, apiDeps).Register(mux)
	oauth.New(prefix, cfg.Hub.CookieMaxAge.D(), st, gate, render, log).Register(mux)
	pageDeps := pages.Deps{Store: st, Servers: core, Gate: gate, Auth: deps.Auth, Renderer: render, Logger: log}
	if deps.GPUs != nil {
		pageDeps.HeldGPUs = gpuView{deps.GPUs}.heldNames
	}
	pages.New(cfg, pageDeps).Register(mux)
	users := router.New(prefix, core, gate, render, log)
	users.Register(mux)
	quiet := func(p string) bool {
		return strings.HasPrefix(p, prefix+"/user/") || strings.HasSuffix(p, "/activity") || p == prefix+"/hub/api" || p == prefix+"/hub/api/"
	}
	// Everything under /user/ is the router's one pattern; asking the mux would match (and
	// allocate) a second time for every proxied request.
	userPattern := prefix + "/user/"
	route := func(r *http.Request) string {
		if strings.HasPrefix(r.URL.Path, userPattern) {
			return userPattern
		}
		_, pattern := mux.Handler(r)
		return pattern
	}
	h.handler = web.Middleware(log, quiet, mx.Middleware(route, web.Guard(prefix, cfg.Hub.MaxBodyBytes, cfg.Hub.BodyTimeout.D(), users.Hosts(mux))))
	return h, nil
}

// requestShutdown asks Run to end (POST /hub/api/shutdown).
func (h *Hub) requestShutdown(stopServers bool) {
	select {
	case h.shutdown <- stopServers:
	default: // one is under way
	}
}

// Handler is the hub's whole HTTP surface.
func (h *Hub) Handler() http.Handler { return h.handler }

// Servers is the server lifecycle core, for tests and the CLI.
func (h *Hub) Servers() *servers.Manager { return h.servers }

// Culler is the built-in culler, for tests; nil with cull.enabled = false.
func (h *Hub) Culler() *cull.Culler { return h.culler }

// Gate is the login layer, for tests.
func (h *Hub) Gate() *auth.Gate { return h.gate }

// Healthy reports whether the hub can still do its work: the systemd watchdog is fed only while
// it is, so a hub wedged on its database gets restarted (user servers keep running meanwhile).
func (h *Hub) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := h.store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// Store exposes the database to the CLI's offline commands (token create).
func (h *Hub) Store() *store.Store { return h.store }

// Close releases the database and what the wiring opened. Running user servers are left alone,
// by design.
func (h *Hub) Close() error {
	errs := []error{h.store.Close()}
	for _, c := range h.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// Reconcile makes the hub's records agree with what survived the last hub: the core adopts the
// units that run and stops the rest (their steps' stop halves release what they held, GPUs
// included), then the GPU grants of servers that no longer run are dropped. Run calls it before
// it serves; nothing may spawn while it runs.
func (h *Hub) Reconcile(ctx context.Context) error {
	if err := h.servers.Reconcile(ctx); err != nil {
		return fmt.Errorf("reconcile servers with systemd: %w", err)
	}
	if h.gpus != nil {
		if err := reconcileGPUs(ctx, h.store, h.gpus); err != nil {
			// The grants concerned stay held (no device is handed out twice); a later stop
			// of their servers, or the next start, releases them.
			h.log.Error("reconcile GPU grants", "err", err)
		}
	}
	return nil
}

// Run reconciles with the units that survived the last hub, then serves until ctx ends.
// ready, if not nil, is called once the listener is open (for sd_notify READY=1).
func (h *Hub) Run(ctx context.Context, ready func()) error {
	if err := h.Reconcile(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", h.cfg.Hub.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (hub.listen): %w", h.cfg.Hub.Listen, err)
	}
	srv := &http.Server{
		Handler:           h.handler,
		ReadHeaderTimeout: 30 * time.Second,
		// No ReadTimeout or WriteTimeout: uploads, kernels' WebSockets and event streams through
		// the router last as long as they last. Bodies to the hub itself have their own deadline
		// (web.Guard); an idle keep-alive connection is closed after two minutes.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if _, ok := c.LocalAddr().(*net.UnixAddr); ok {
				return web.OverProxySocket(ctx)
			}
			return ctx
		},
	}
	var sock net.Listener
	if path := h.cfg.Hub.ProxySocket; path != "" {
		var group string
		if sock, group, err = listenProxySocket(path, h.cfg.Hub.ProxySocketGroup, user.LookupGroup); err != nil {
			ln.Close()
			return err
		}
		if group == "" {
			h.log.Warn("the proxy socket is root's alone: no www-data, http or nginx group here; set hub.proxy_socket_group to your reverse proxy's group", "socket", path)
		}
		h.log.Info("hub listening for the reverse proxy", "socket", path, "group", group)
	}
	chores := make(chan struct{})
	go func() { h.servers.Run(ctx); close(chores) }()
	if h.culler != nil {
		go h.culler.Run(ctx)
	}
	h.log.Info("hub listening", "address", ln.Addr().String(), "base_url", h.cfg.Hub.BaseURL, "api_url", h.cfg.APIURLFor())
	if ready != nil {
		ready()
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if sock != nil {
		go func() { errc <- srv.Serve(sock) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case stopServers := <-h.shutdown:
		if stopServers {
			h.log.Warn("stopping every server before shutting down, as the API asked")
			h.servers.StopAll(context.WithoutCancel(ctx))
		}
	}
	h.log.Info("hub shutting down; user servers keep running")
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	<-chores // the last activity is written
	return nil
}

// loadSecret reads a 32-byte secret kept in the data dir, creating it 0600 on first start.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		secret, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(secret) < 32 {
			return nil, fmt.Errorf("secret %s is damaged: remove it to make a new one (everyone will have to log in again)", path)
		}
		return secret, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(secret) + "\n"); err != nil {
		return nil, fmt.Errorf("write secret: %w", err)
	}
	return secret, nil
}
