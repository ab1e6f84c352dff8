package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/cull"
	"github.com/jupyterhub-go/jupyterhub-go/agent/metrics"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/cgroup"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
	"github.com/jupyterhub-go/jupyterhub-go/nfs"
	"github.com/jupyterhub-go/jupyterhub-go/oidc"
	"github.com/jupyterhub-go/jupyterhub-go/pam"
	"github.com/jupyterhub-go/jupyterhub-go/spawner"
	"github.com/jupyterhub-go/jupyterhub-go/vault"
)

// Open builds a hub wired to the real concerns the config names: PAM or OpenID Connect login,
// systemd units, and the host's GPUs through NVML.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, ConfigError{fmt.Errorf("invalid configuration:\n%w", err)}
	}
	deps := Deps{Logger: log}
	var err error
	switch cfg.Auth.Method {
	case "pam":
		if deps.Auth, err = newPAMAuth(cfg.Auth.PAM, log); err != nil {
			return nil, ConfigError{fmt.Errorf("auth.pam: %w", err)}
		}
	case "oidc":
		// A persistent flow key lets a login that is under way survive a hub restart.
		if err := os.MkdirAll(cfg.Hub.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		key, err := loadSecret(filepath.Join(cfg.Hub.DataDir, "oidc_flow_key"))
		if err != nil {
			return nil, err
		}
		deps.IdP, err = NewOpenIDProvider(ctx, cfg, key, log)
		if errors.Is(err, oidc.ErrUnreachable) {
			// The hub is also the router: running servers must stay reachable while the
			// identity provider is down, so start anyway and retry discovery at each login.
			log.Error("identity provider unreachable; logins will fail until it answers", "issuer", cfg.Auth.OIDC.Issuer, "err", err)
			deps.IdP = &lateProvider{connect: func(ctx context.Context) (auth.IdentityProvider, error) {
				return NewOpenIDProvider(ctx, cfg, key, log)
			}}
		} else if err != nil {
			return nil, ConfigError{err}
		}
	}
	// systemd is dialled while the store, the GPUs and Vault are opened: its two D-Bus
	// connections, each authenticated, wait on the bus daemon, which the rest need not wait for.
	dialled := make(chan dialResult, 1)
	go func() {
		units, err := spawner.Connect(ctx, spawner.Options{UnitPrefix: cfg.Spawner.UnitPrefix, Logger: log})
		dialled <- dialResult{units, err}
	}()
	closeOpened := func() {
		if deps.Store != nil {
			deps.Store.Close()
		}
		for _, c := range deps.Close {
			c()
		}
	}
	fail := func(err error) (*Hub, error) {
		closeOpened()
		if r := <-dialled; r.err == nil {
			r.units.Close()
		}
		return nil, err
	}
	// The GPU allocator keeps its ledger in the hub's store, and the gpu step needs the
	// allocator, so the store is opened here rather than by New.
	if deps.Store, err = OpenStore(ctx, cfg); err != nil {
		return fail(err)
	}
	var nv *gpu.NVML
	if cfg.GPU.Enabled {
		nv = gpu.OpenNVML(gpu.NVMLOptions{Logger: log}) // a host without the driver logs "no GPUs" and offers none
		deps.Close = append(deps.Close, nv.Close)
	}
	if deps.GPUs, err = NewAllocator(ctx, cfg, deps.Store, nv, log); err != nil {
		return fail(err)
	}
	vlt, err := openVault(ctx, cfg.Vault, log)
	if err != nil {
		return fail(err)
	}
	if vlt != nil {
		deps.Close = append(deps.Close, vlt.Close)
		deps.Collectors = append(deps.Collectors, vlt.Collector())
	}
	r := <-dialled
	if r.err != nil {
		closeOpened()
		return nil, fmt.Errorf("connect to systemd (user servers run as systemd units; is this a systemd host and are we root?): %w", r.err)
	}
	units := r.units
	deps.Close = append(deps.Close, units.Close)
	deps.Units, deps.Steps = units, spawnSteps(cfg, units, deps.GPUs, vlt, log)
	deps.AfterStep = crashAfter(os.Getenv("JHGO_CRASH_AFTER"), log)
	deps.Usage = CgroupUsage(cgroup.DefaultRoot, cfg.Spawner.Slice)
	return New(ctx, cfg, deps)
}

// dialResult is the spawner's connection to systemd, or why there is none.
type dialResult struct {
	units *spawner.Manager
	err   error
}

// spawnSteps is the spawn pipeline after the hub's own credentials step, in order; stopping a
// server runs it in reverse. A concern plugs in with one line here, before the unit; a step the
// configuration turns off is nil and left out.
func spawnSteps(cfg config.Config, units *spawner.Manager, gpus *gpu.Allocator, vlt *vault.Vault, log *slog.Logger) []servers.Step {
	return present(
		nfsHomes(cfg, units, log), // the user's home mounted from NFS and checked as the user ([nfs] enabled)
		gpu.NewStep(gpus, log),    // the GPUs the server asks for: device nodes and CUDA_VISIBLE_DEVICES for its unit
		vaultStep(vlt),            // a Vault token of the server's own, revoked at stop ([vault] enabled)
		spawner.NewStep(units, unitOptions(cfg.Spawner, cfg.Auth.PAM.MinUID, hasGPUs(gpus))), // the server itself, as a transient unit
	)
}

// CgroupUsage reads servers' usage from their units' cgroups under root (the host's
// /sys/fs/cgroup; a fake tree in agent/hubtest), in the slice spawner.slice puts them in.
func CgroupUsage(root, slice string) servers.UsageReader {
	return cgroupUsage{cgroup.New(root), slice}
}

type cgroupUsage struct {
	r     *cgroup.Reader
	slice string
}

func (c cgroupUsage) Usage(ctx context.Context, unit string) (servers.Usage, error) {
	st, err := c.r.Unit(c.slice, unit)
	return servers.Usage{MemoryBytes: st.MemoryBytes, CPU: st.CPU}, err
}

// serverUsage is the metrics' per-server memory and CPU: each running server's unit, read from
// its cgroup at the scrape. A server whose cgroup cannot be read (stopping just now) is left out.
func serverUsage(st *store.Store, r servers.UsageReader) func(context.Context) ([]metrics.ServerUsage, error) {
	if r == nil {
		return nil
	}
	return func(ctx context.Context) ([]metrics.ServerUsage, error) {
		svs, err := st.Servers(ctx, 0, true)
		if err != nil {
			return nil, err
		}
		var out []metrics.ServerUsage
		for _, sv := range svs {
			if sv.State != store.Running || sv.Unit == "" {
				continue
			}
			if u, err := r.Usage(ctx, sv.Unit); err == nil {
				out = append(out, metrics.ServerUsage{User: sv.UserName, Server: sv.Name, MemoryBytes: u.MemoryBytes, CPUSeconds: u.CPU.Seconds()})
			}
		}
		return out, nil
	}
}

// present drops the steps that are turned off (nil).
func present(steps ...servers.Step) []servers.Step {
	return slices.DeleteFunc(steps, func(s servers.Step) bool { return s == nil })
}

// nfsHomes is the [nfs] step, sharing the spawner's D-Bus connection; nil unless it is enabled.
func nfsHomes(cfg config.Config, units *spawner.Manager, log *slog.Logger) servers.Step {
	n := cfg.NFS
	if !n.Enabled {
		return nil
	}
	return nfs.NewStep(units.Conn(), nfs.Options{
		Server: n.Server, Export: n.Export, What: n.What, Where: n.Where, MountOptions: n.Options,
		MountTimeout: n.MountTimeout.D(), UnmountAfter: n.UnmountAfter.D(), MinUID: cfg.Auth.PAM.MinUID,
	}, log)
}

// stopServersOnLostAccess is auth.oidc.on_lost_access = "stop": the servers of a user who lost
// access are stopped through the lifecycle core, as a stop through the API would be (in the
// background; the stop itself is marked before this returns).
func stopServersOnLostAccess(st *store.Store, core *servers.Manager, log *slog.Logger) func(context.Context, store.User) {
	return func(ctx context.Context, u store.User) {
		svs, err := st.Servers(ctx, u.ID, true)
		if err != nil {
			log.Error("lost access: cannot list the user's servers to stop them", "user", u.Name, "err", err)
			return
		}
		for _, sv := range svs {
			if _, err := core.Stop(sv); err != nil {
				log.Error("lost access: stop server", "user", u.Name, "server", sv.Name, "err", err)
				continue
			}
			log.Info("lost access: stopping server (auth.oidc.on_lost_access = \"stop\")", "user", u.Name, "server", sv.Name)
		}
	}
}

// newCuller is the [cull] section's culler, which stops servers through the core and asks them
// about their kernels on loopback; nil unless it is enabled.
func newCuller(c config.Cull, st *store.Store, core *servers.Manager, log *slog.Logger) *cull.Culler {
	if !c.Enabled {
		return nil
	}
	return cull.New(st, core, cull.NewServerKernels(st, core.URL), cull.Options{
		Timeout: c.Timeout.D(), Every: c.Every.D(), MaxAge: c.MaxAge.D(),
		CullAdminServers: c.CullAdminServers, CullNamedServers: c.CullNamedServers, RemoveUsers: c.RemoveUsers,
		Concurrency: c.Concurrency, DryRun: c.DryRun, OpenTabsAreActivity: c.OpenTabsAreActivity, Logger: log,
	})
}

// unitOptions is the [spawner] section as the unit step takes it; closeDevices is set on hosts
// with GPUs.
func unitOptions(sc config.Spawner, minUID int, closeDevices bool) spawner.StepOptions {
	return spawner.StepOptions{
		Cmd: sc.Cmd, Args: sc.Args, Env: sc.Env, EnvKeep: sc.EnvKeep, Path: sc.Path, WorkingDir: sc.WorkingDir,
		MemoryMax: uint64(sc.MemoryMax), CPUQuota: float64(sc.CPUQuota), TasksMax: sc.TasksMax, Slice: sc.Slice,
		Sandbox:      spawner.Sandbox{PrivateTmp: sc.PrivateTmp, NoNewPrivileges: sc.NoNewPrivileges, ProtectSystem: sc.ProtectSystem, UMask: sc.UMask},
		PrivateHomes: sc.PrivateHomes,
		MinUID:       minUID,
		CloseDevices: closeDevices,
	}
}

// ConfigError is a start-up failure that only a configuration change can fix; the command exits
// 2 for it, which the systemd unit does not restart on.
type ConfigError struct{ Err error }

func (e ConfigError) Error() string { return e.Err.Error() }
func (e ConfigError) Unwrap() error { return e.Err }

// pamAuth adapts the pam package to the hub: PAM checks the password, the account database
// supplies the groups, and accounts below auth.pam.min_uid (root, daemons) are kept out.
type pamAuth struct {
	pam    *pam.Authenticator
	minUID int
}

func newPAMAuth(c config.PAM, log *slog.Logger) (*pamAuth, error) {
	a, err := pam.New(pam.Options{Service: c.Service, ConfDir: c.ConfDir, Logger: log})
	if err != nil {
		return nil, err
	}
	return &pamAuth{pam: a, minUID: c.MinUID}, nil
}

func (p *pamAuth) Authenticate(ctx context.Context, name, password string) (auth.Identity, error) {
	acct, err := user.Lookup(name)
	if err != nil {
		// Run PAM anyway so an unknown account takes as long to refuse as a wrong password.
		p.pam.Authenticate(ctx, name, password)
		return auth.Identity{}, auth.ErrBadLogin
	}
	if uid, err := strconv.Atoi(acct.Uid); err != nil || uid < p.minUID {
		p.pam.Authenticate(ctx, name, password)
		return auth.Identity{}, auth.ErrBadLogin
	}
	if err := p.pam.Authenticate(ctx, name, password); err != nil {
		if errors.Is(err, pam.ErrAuthFailed) {
			return auth.Identity{}, auth.ErrBadLogin
		}
		return auth.Identity{}, err
	}
	groups, err := pam.Groups(name)
	if err != nil {
		return auth.Identity{}, fmt.Errorf("look up groups of %s: %w", name, err)
	}
	return auth.Identity{Name: name, Groups: groups}, nil
}

// openIDProvider adapts the oidc package to the hub's IdentityProvider: the provider's tokens
// travel through the hub as opaque JSON, sealed at rest.
type openIDProvider struct{ p *oidc.Provider }

// NewOpenIDProvider runs discovery against auth.oidc.issuer; its errors name the key and say what
// is wrong (unreachable issuer, issuer mismatch, missing client secret file or one others can
// read). check-config uses it too.
func NewOpenIDProvider(ctx context.Context, cfg config.Config, flowKey []byte, log *slog.Logger) (auth.IdentityProvider, error) {
	o := cfg.Auth.OIDC
	if err := privateSecretFile(o.ClientSecretFile); err != nil {
		return nil, err
	}
	p, err := oidc.New(ctx, oidc.Config{
		Issuer: o.Issuer, ClientID: o.ClientID, ClientSecretFile: o.ClientSecretFile,
		RedirectURL: cfg.OIDCRedirectURL(), Scopes: o.Scopes, UsernameClaim: o.UsernameClaim,
		GroupsClaims: o.GroupsClaims, UserInfo: o.UserInfo, PostLogoutRedirectURL: cfg.OIDCPostLogoutURL(),
		AuthParams: o.AuthParams, FlowKey: flowKey,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("auth.oidc: %w", err)
	}
	return openIDProvider{p}, nil
}

// privateSecretFile refuses a client secret file that its group or others can read: with the
// secret, anyone on the host can act as the hub at the provider (trade codes for tokens, refresh
// users' logins). The oidc package only warns about it; the hub refuses to start, and
// check-config to pass. A missing or unreadable file is oidc.New's to report.
func privateSecretFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return fmt.Errorf("auth.oidc.client_secret_file: %w: %s can be read by its group or others (mode %04o); make it private to the hub: chmod 600 %s",
		oidc.ErrConfig, path, fi.Mode().Perm(), path)
}

func (o openIDProvider) Begin(_ context.Context, next string) (string, string, error) {
	u, flow := o.p.Begin(next)
	return u, string(flow), nil
}

func (o openIDProvider) Finish(ctx context.Context, flow string, q url.Values) (auth.RemoteLogin, error) {
	l, err := o.p.Finish(ctx, oidc.Flow(flow), q)
	if err != nil {
		return auth.RemoteLogin{}, err
	}
	return remoteLogin(l)
}

func (o openIDProvider) Refresh(ctx context.Context, state []byte) (auth.RemoteLogin, error) {
	var t oidc.Tokens
	if err := json.Unmarshal(state, &t); err != nil {
		return auth.RemoteLogin{}, fmt.Errorf("read stored tokens: %w", err)
	}
	if t.RefreshToken == "" {
		// oidc.Refresh would call this an ended session (ErrReauthenticate), and the hub would
		// log the user out at their next request: a provider that issues no refresh tokens
		// (Keycloak always does) just cannot be asked again before the access token expires.
		return auth.RemoteLogin{}, auth.ErrNoRefresh
	}
	l, err := o.p.Refresh(ctx, t)
	if errors.Is(err, oidc.ErrReauthenticate) {
		// Keycloak answers invalid_grant alike for a session past its idle or max time and for
		// one an administrator ended; only the refresh token's expiry tells them apart. A login
		// that ran its course is no lost access: its user just logs in again. Without a known
		// expiry, the refusal counts as an early end.
		if !t.RefreshExpiry.IsZero() && time.Now().After(t.RefreshExpiry.Add(-refreshExpirySlack)) {
			return auth.RemoteLogin{}, fmt.Errorf("%w: %w", auth.ErrLoginExpired, err)
		}
		return auth.RemoteLogin{}, fmt.Errorf("%w: %w", auth.ErrLoginRevoked, err)
	}
	if err != nil {
		return auth.RemoteLogin{}, err
	}
	return remoteLogin(l)
}

// refreshExpirySlack: a refusal this close before the refresh token's recorded expiry counts as
// the expiry. The hub records it when the answer arrives, a little after the provider counted
// from, and oidc-provider rounds to whole seconds.
const refreshExpirySlack = 5 * time.Second

func (o openIDProvider) LogoutURL(state []byte) string {
	var t oidc.Tokens
	json.Unmarshal(state, &t)
	return o.p.LogoutURL(t)
}

func (o openIDProvider) VerifyLogoutToken(ctx context.Context, raw string) (string, string, error) {
	return o.p.VerifyLogoutToken(ctx, raw)
}

func (o openIDProvider) Explain(err error) string { return oidc.UserMessage(err) }

func remoteLogin(l oidc.Login) (auth.RemoteLogin, error) {
	state, err := json.Marshal(l.Tokens)
	if err != nil {
		return auth.RemoteLogin{}, err
	}
	return auth.RemoteLogin{
		Identity: auth.Identity{Name: l.Username, Groups: l.Groups},
		Subject:  l.Subject, Session: l.SessionID, State: state, Expiry: l.Tokens.Expiry, Next: l.Next,
	}, nil
}

// lateProvider stands in for an identity provider that could not be reached when the hub
// started, and connects on first use.
type lateProvider struct {
	mu      sync.Mutex
	p       auth.IdentityProvider
	connect func(context.Context) (auth.IdentityProvider, error)
}

func (l *lateProvider) get(ctx context.Context) (auth.IdentityProvider, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != nil {
		return l.p, nil
	}
	p, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	l.p = p
	return p, nil
}

func (l *lateProvider) Begin(ctx context.Context, next string) (string, string, error) {
	p, err := l.get(ctx)
	if err != nil {
		return "", "", err
	}
	return p.Begin(ctx, next)
}

func (l *lateProvider) Finish(ctx context.Context, flow string, q url.Values) (auth.RemoteLogin, error) {
	p, err := l.get(ctx)
	if err != nil {
		return auth.RemoteLogin{}, err
	}
	return p.Finish(ctx, flow, q)
}

func (l *lateProvider) Refresh(ctx context.Context, state []byte) (auth.RemoteLogin, error) {
	p, err := l.get(ctx)
	if err != nil {
		return auth.RemoteLogin{}, err
	}
	return p.Refresh(ctx, state)
}

func (l *lateProvider) LogoutURL(state []byte) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p == nil {
		return ""
	}
	return l.p.LogoutURL(state)
}

func (l *lateProvider) VerifyLogoutToken(ctx context.Context, raw string) (string, string, error) {
	p, err := l.get(ctx)
	if err != nil {
		return "", "", err
	}
	return p.VerifyLogoutToken(ctx, raw)
}

func (l *lateProvider) Explain(err error) string { return oidc.UserMessage(err) }

// crashAfter is JHGO_CRASH_AFTER=<step>:<start|stop> (e.g. "nfs:start"), for the crash tests in
// test/e2e only: the hub SIGKILLs itself the first time that half of that step has succeeded, as
// a power cut or the OOM killer would, so the tests can show that the next hub repairs what any
// two steps leave between them. Unset (always, outside those tests) it is nil.
func crashAfter(at string, log *slog.Logger) func(step, half string) {
	if at == "" {
		return nil
	}
	log.Warn("JHGO_CRASH_AFTER is set: this hub kills itself after that spawn step (crash tests only)", "at", at)
	var once sync.Once
	return func(step, half string) {
		if step+":"+half == at {
			once.Do(func() {
				log.Warn("JHGO_CRASH_AFTER: killing the hub now", "at", at)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			})
		}
	}
}
