// Package agent is the jupyterhub-go daemon: it wires the authenticator, the unit manager and the
// store together and serves the hub's pages, its REST API and OAuth provider, and the /user/ router.
//
// The agent knows the JupyterHub protocol; it does not know D-Bus, PAM or any other concern's wire
// details. Those live in their own packages and reach the agent through the small interfaces below.
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
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/spawner"
)

// Version is the JupyterHub API level this hub implements; it is what X-JupyterHub-Version says,
// so that stock single-user servers see a hub of the major version they expect.
const Version = "5.3.0"

// Identity is who an authenticator says logged in.
type Identity struct {
	Name   string
	Groups []string
}

// ErrBadLogin is what authenticators return for wrong credentials or an unknown account.
// Login pages show one message for both, so no one learns which accounts exist.
var ErrBadLogin = errors.New("invalid username or password")

// Authenticator checks a username and password (PAM does this).
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (Identity, error)
}

// Units starts and stops user servers as system units (the spawner package does this over D-Bus).
type Units interface {
	Start(ctx context.Context, spec spawner.Spec) error
	Stop(ctx context.Context, unit string) error
	State(ctx context.Context, unit string) (spawner.State, error)
	List(ctx context.Context) ([]spawner.State, error)
	Journal(ctx context.Context, unit string, lines int) ([]string, error)
}

// Deps are the concerns the hub is wired to: Auth for password logins (PAM), or IdP for logins
// at an identity provider (OpenID Connect).
type Deps struct {
	Auth   Authenticator
	IdP    IdentityProvider
	Units  Units
	Logger *slog.Logger
}

// Hub is the running daemon.
type Hub struct {
	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	auth    Authenticator
	idp     IdentityProvider
	units   Units
	secret  []byte  // signs cookies and XSRF tokens
	sealer  *sealer // encrypts identity-provider tokens at rest
	prefix  string  // base URL without its trailing slash
	trusted []netip.Prefix

	// life is the hub's lifetime: spawns and stops outlive the request that asked for them.
	life context.Context

	mu     sync.Mutex               // guards the maps below and every read-modify-write of a server's state
	routes map[string]route         // user name → running default server
	spawns map[int64]*spawnProgress // server id → progress of its current or last spawn
	stops  map[int64]chan struct{}  // server id → closed when its stop finishes

	activity *activityLog
	proxy    http.Handler
	pages    *pages
}

// New opens the hub's state under the data dir; it starts nothing.
func New(ctx context.Context, cfg config.Config, deps Deps) (*Hub, error) {
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
	key, err := loadSecret(filepath.Join(cfg.Hub.DataDir, "auth_state_key"))
	if err != nil {
		return nil, err
	}
	sl, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, filepath.Join(cfg.Hub.DataDir, "jupyterhub-go.sqlite"))
	if err != nil {
		return nil, err
	}
	h := &Hub{
		cfg:      cfg,
		log:      log,
		store:    st,
		auth:     deps.Auth,
		idp:      deps.IdP,
		units:    deps.Units,
		secret:   secret,
		sealer:   sl,
		prefix:   strings.TrimSuffix(cfg.Hub.BaseURL, "/"),
		life:     ctx,
		routes:   map[string]route{},
		spawns:   map[int64]*spawnProgress{},
		stops:    map[int64]chan struct{}{},
		activity: newActivityLog(),
	}
	for _, p := range cfg.Hub.TrustedProxies {
		h.trusted = append(h.trusted, netip.MustParsePrefix(p)) // validated above
	}
	h.proxy = h.newProxy()
	if h.pages, err = newPages(h); err != nil {
		st.Close()
		return nil, err
	}
	return h, nil
}

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

// Close releases the database. Running user servers are left alone, by design.
func (h *Hub) Close() error { return h.store.Close() }

// Run reconciles with the units that survived the last hub, then serves until ctx ends.
// ready, if not nil, is called once the listener is open (for sd_notify READY=1).
func (h *Hub) Run(ctx context.Context, ready func()) error {
	h.life = ctx
	if err := h.reconcile(ctx); err != nil {
		return fmt.Errorf("reconcile servers with systemd: %w", err)
	}
	ln, err := net.Listen("tcp", h.cfg.Hub.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (hub.listen): %w", h.cfg.Hub.Listen, err)
	}
	srv := &http.Server{
		Handler:           h.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go h.background(ctx)
	h.log.Info("hub listening", "address", ln.Addr().String(), "base_url", h.cfg.Hub.BaseURL, "api_url", h.cfg.APIURLFor())
	if ready != nil {
		ready()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	h.log.Info("hub shutting down; user servers keep running")
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	h.activity.flush(shut, h.store, h.log)
	return nil
}

// background runs the periodic chores: writing activity, expiring old credentials.
func (h *Hub) background(ctx context.Context) {
	flush := time.NewTicker(15 * time.Second)
	expire := time.NewTicker(time.Hour)
	defer flush.Stop()
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			h.activity.flush(ctx, h.store, h.log)
		case <-expire.C:
			if err := h.store.Expire(ctx); err != nil {
				h.log.Warn("expire credentials", "err", err)
			}
		}
	}
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
