// Package vault gives each user server a Vault token of its own: at spawn the vault step writes
// the policy jupyter-user-<name> from a template, makes an orphan token with it and hands it to
// the server as NOTEBOOK_VAULT_TOKEN (with VAULT_ADDR) in its 0400 environment file; at stop,
// and at the next hub start for a server that died while no hub watched, it revokes the token by
// its accessor, the only part of it the hub keeps (in the store, through Job.KeepState).
//
// The hub acts with an admin token read from a file (mode 0600 or stricter; contrib/vault has
// its policy). A loop renews it at half its TTL (not more often than every 30 s unless the TTL is
// shorter, and at least every 5 minutes, so that a revoked token is noticed), with backoff when
// Vault does not answer. When a renewal is refused the file is read again: an operator replaces
// a dead token by writing a new one there, without restarting the hub. The token's state is a
// log line when it changes and a gauge (Collector).
//
// # Names
//
// A user name goes into Vault paths and the policy name as it is when it is made only of
// lowercase letters, digits, '_', '.' and '-', starts with a letter, digit or '_', and does not
// begin with "u-"; any other name (one with '@', say) becomes "u-" and the first 16 hex digits
// of its SHA-256, as the user's host name does (servers.Label). PathName is that mapping.
//
// # Tokens never leave the step
//
// The user's token goes only into Job.Env, which the unit step writes to a 0400 file; it is not
// logged, stored or shown on the progress stream, and the admin token is not logged either.
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Options configures the hub's Vault client ([vault] in the configuration).
type Options struct {
	Address        string // e.g. "https://vault.example.org:8200"
	CAFile         string // PEM CA bundle for Vault's certificate; "" for the system's
	AdminTokenFile string // the hub's own token, mode 0600
	// AdminTokenTTL is the TTL the hub asks for when it renews its admin token; 0 asks for the
	// token's own (its role's or mount's default).
	AdminTokenTTL time.Duration
	// PolicyTemplate is the policy of each user's token in Vault's HCL, with {NAME} for the
	// user's PathName; "" is DefaultPolicyTemplate.
	PolicyTemplate string
	TTL, MaxTTL    time.Duration // the user token's ttl and explicit_max_ttl
	// Required fails a spawn that cannot get a token; otherwise the server starts without one.
	Required bool
	Logger   *slog.Logger

	minPeriod time.Duration // the shortest renewal period; 0: 30 s (tests shorten it)
}

// DefaultPolicyTemplate gives a user's token their own part of the kv v2 engine at secret/ and
// what it needs to look itself up and renew itself.
const DefaultPolicyTemplate = `path "secret/data/jupyter/users/{NAME}/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
path "secret/metadata/jupyter/users/{NAME}/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
`

// Admin token states, as the log and the jupyterhub_vault_admin_token_state gauge say them.
const (
	StateOK          = "ok"          // renewed (or looked up) at the last check
	StateExpiring    = "expiring"    // works, but expires soon and cannot be renewed past that
	StateDead        = "dead"        // Vault refuses it (revoked, expired), and the file has no better one
	StateUnreachable = "unreachable" // Vault did not answer, or is sealed
)

var states = []string{StateOK, StateExpiring, StateDead, StateUnreachable}

// Vault is the hub's connection to Vault: the admin token's upkeep and the vault spawn step.
type Vault struct {
	opts   Options
	log    *slog.Logger
	client *api.Client

	kick      chan struct{} // asks the renewal loop to check now (a spawn was refused)
	reloading sync.Mutex    // one reading of the token file at a time
	stop      context.CancelFunc
	done      chan struct{}

	mu      sync.Mutex
	token   string    // the admin token in use
	state   string    // StateOK, ...; "" before the first check
	expires time.Time // when the admin token expires; zero if it never does or is unknown
	pending []string  // accessors whose revocation failed, tried again by the loop
}

// New reads the admin token file (refusing one that its group or others can read), sets up
// the client and starts the renewal loop, which runs until ctx ends or Close. It does not wait
// for Vault: the hub starts, and routes running servers, while Vault is down.
func New(ctx context.Context, opts Options) (*Vault, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PolicyTemplate == "" {
		opts.PolicyTemplate = DefaultPolicyTemplate
	}
	if opts.minPeriod == 0 {
		opts.minPeriod = 30 * time.Second
	}
	token, err := ReadTokenFile(opts.AdminTokenFile)
	if err != nil {
		return nil, err
	}
	client, err := newClient(opts, token)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	v := &Vault{opts: opts, log: opts.Logger, client: client, token: token, kick: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go v.run(ctx)
	return v, nil
}

// newClient is a Vault client for opts acting with token.
func newClient(opts Options, token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = opts.Address
	cfg.MaxRetries = 0 // the loop backs off itself, and a spawn should hear at once that Vault is down
	cfg.Timeout = 15 * time.Second
	if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: opts.CAFile}); err != nil {
		return nil, fmt.Errorf("vault.ca_file: %w", err)
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: set up the client for %s: %w", opts.Address, err)
	}
	client.SetToken(token)
	return client, nil
}

// Close stops the renewal loop.
func (v *Vault) Close() error {
	v.stop()
	<-v.done
	return nil
}

// ReadTokenFile reads a token file, refusing one that its group or others may read: with the
// hub's token anyone on the host could mint tokens for every user's secrets.
func ReadTokenFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("vault.admin_token_file: set the file that holds the hub's Vault token, e.g. \"/etc/jupyterhub-go/vault-token\"")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("vault.admin_token_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("vault.admin_token_file: %s can be read by its group or others (mode %04o); make it private to the hub: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("vault.admin_token_file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" || strings.ContainsAny(token, " \t\n") {
		return "", fmt.Errorf("vault.admin_token_file: %s must hold one Vault token on one line", path)
	}
	return token, nil
}

// State says how the admin token stood at the last check, and when it expires (zero: never, or
// not known yet).
func (v *Vault) State() (string, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.state, v.expires
}

// run renews the admin token until ctx ends.
func (v *Vault) run(ctx context.Context) {
	defer close(v.done)
	backoff := v.opts.minPeriod / 30
	for {
		wait, err := v.check(ctx)
		if err != nil {
			wait = backoff
			backoff = min(backoff*2, v.opts.minPeriod)
		} else {
			backoff = v.opts.minPeriod / 30
		}
		v.retryRevocations(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-v.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// check renews the admin token (or looks it up, if it cannot be renewed) and returns when to
// check next. A refusal makes it read the file again.
func (v *Vault) check(ctx context.Context) (time.Duration, error) {
	ttl, final, err := v.renew(ctx)
	if err != nil && refused(err) {
		if fresh, ok := v.reload(ctx); ok {
			ttl, final, err = fresh.ttl, fresh.final, nil
		}
	}
	if err != nil {
		state := StateUnreachable
		if refused(err) {
			state = StateDead
		}
		v.setState(state, time.Time{}, err)
		return 0, err
	}
	var expires time.Time
	state := StateOK
	if ttl > 0 {
		expires = time.Now().Add(ttl)
		if final && ttl < v.expiringWithin() {
			state = StateExpiring
		}
	}
	v.setState(state, expires, nil)
	return v.period(ttl), nil
}

// renew renews the admin token by AdminTokenTTL if it can be renewed, and returns its TTL (0:
// it never expires) and whether renewing can no longer extend it: the token is not renewable,
// or the renewal was cut short by its max TTL.
func (v *Vault) renew(ctx context.Context) (ttl time.Duration, final bool, err error) {
	self, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return 0, false, err
	}
	if ttl, err = self.TokenTTL(); err != nil {
		return 0, false, fmt.Errorf("read the admin token's TTL: %w", err)
	}
	renewable, _ := self.TokenIsRenewable()
	if !renewable || ttl == 0 {
		return ttl, ttl > 0, nil
	}
	// Asked for nothing in particular, Vault renews to the token's creation TTL (or period).
	want := v.opts.AdminTokenTTL
	if want == 0 {
		if n, ok := self.Data["creation_ttl"].(json.Number); ok {
			secs, _ := n.Int64()
			want = time.Duration(secs) * time.Second
		}
	}
	renewed, err := v.client.Auth().Token().RenewSelfWithContext(ctx, int(v.opts.AdminTokenTTL/time.Second))
	if err != nil {
		return 0, false, err
	}
	if ttl, err = renewed.TokenTTL(); err != nil {
		return 0, false, fmt.Errorf("read the admin token's TTL: %w", err)
	}
	return ttl, ttl < want-time.Second, nil
}

// renewal is what a renewal found out.
type renewal struct {
	ttl   time.Duration
	final bool
}

// reload reads the token file again and switches to the token there if it is another one that
// Vault accepts.
func (v *Vault) reload(ctx context.Context) (renewal, bool) {
	v.reloading.Lock()
	defer v.reloading.Unlock()
	token, err := ReadTokenFile(v.opts.AdminTokenFile)
	if err != nil {
		v.log.Error("vault: cannot read the admin token file again", "err", err)
		return renewal{}, false
	}
	v.mu.Lock()
	same := token == v.token
	v.mu.Unlock()
	if same {
		return renewal{}, false
	}
	old := v.client.Token()
	v.client.SetToken(token)
	ttl, final, err := v.renew(ctx)
	if err != nil {
		v.client.SetToken(old)
		v.log.Error("vault: the new token in the admin token file does not work either", "file", v.opts.AdminTokenFile, "err", err)
		return renewal{}, false
	}
	v.mu.Lock()
	v.token = token
	v.mu.Unlock()
	v.log.Info("vault: using the new admin token from its file", "file", v.opts.AdminTokenFile)
	return renewal{ttl, final}, true
}

// period is how long to wait before renewing a token with ttl left: half of it, within the
// bounds in the package doc.
func (v *Vault) period(ttl time.Duration) time.Duration {
	most := 10 * v.opts.minPeriod // 5 minutes
	if ttl == 0 {
		return most
	}
	p := ttl / 2
	if p < v.opts.minPeriod && v.opts.minPeriod < ttl*3/4 {
		p = v.opts.minPeriod
	}
	return min(p, most)
}

// expiringWithin is how close to its expiry a token that renewing no longer extends counts as
// expiring: ten renewal periods, 5 minutes. (A token with a short period is not expiring: each
// renewal gives it its period again.)
func (v *Vault) expiringWithin() time.Duration { return 10 * v.opts.minPeriod }

// setState records the admin token's state and logs a change.
func (v *Vault) setState(state string, expires time.Time, err error) {
	v.mu.Lock()
	was := v.state
	v.state, v.expires = state, expires
	v.mu.Unlock()
	if state == was {
		return
	}
	file := v.opts.AdminTokenFile
	switch state {
	case StateOK:
		v.log.Info("vault: the hub's admin token works", "address", v.opts.Address, "expires", expiry(expires))
	case StateExpiring:
		v.log.Warn("vault: the hub's admin token expires soon and cannot be renewed past that: write a new token to its file",
			"file", file, "expires", expiry(expires))
	case StateDead:
		v.log.Error("vault: Vault refuses the hub's admin token (revoked or expired): write a new token to its file; until then servers get no Vault token",
			"file", file, "err", err)
	case StateUnreachable:
		v.log.Error("vault: cannot reach Vault to renew the hub's admin token; retrying", "address", v.opts.Address, "err", err)
	}
}

func expiry(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// refused says whether Vault answered err with permission denied: the token is bad.
func refused(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}

// explain says in words why a call to Vault failed, naming Vault.
func (v *Vault) explain(err error) string {
	var re *api.ResponseError
	var ne net.Error
	switch {
	case errors.As(err, &re) && re.StatusCode == 503 && strings.Contains(strings.Join(re.Errors, " "), "sealed"):
		return fmt.Sprintf("Vault at %s is sealed", v.opts.Address)
	case errors.As(err, &re) && re.StatusCode == 403:
		return fmt.Sprintf("Vault at %s refused the hub's admin token (vault.admin_token_file): %s", v.opts.Address, strings.Join(re.Errors, "; "))
	case errors.As(err, &re):
		return fmt.Sprintf("Vault at %s answered %d: %s", v.opts.Address, re.StatusCode, strings.Join(re.Errors, "; "))
	case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("Vault at %s cannot be reached: %v", v.opts.Address, err)
	}
	return fmt.Sprintf("Vault at %s: %v", v.opts.Address, err)
}

// checkNow asks the loop to check the admin token (and maybe read its file) at once.
func (v *Vault) checkNow() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// Describe checks the admin token file and asks Vault about the token, for check-config: an
// error is a file the hub would refuse; what Vault says (or that it cannot be reached) is the
// description, since the hub starts without Vault.
func Describe(ctx context.Context, opts Options) (string, error) {
	token, err := ReadTokenFile(opts.AdminTokenFile)
	if err != nil {
		return "", err
	}
	v := &Vault{opts: opts}
	client, err := newClient(opts, token)
	if err != nil {
		return "", err
	}
	self, err := client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return "vault: " + v.explain(err) + "; the hub would start, and spawns would fail or start without a token (vault.required)", nil
	}
	policies, _ := self.TokenPolicies()
	ttl, _ := self.TokenTTL()
	left := "never expires"
	if ttl > 0 {
		left = "expires in " + ttl.Round(time.Second).String() + " unless the hub renews it"
	}
	return fmt.Sprintf("vault: the hub's token from %s works at %s (policies %s; %s)", opts.AdminTokenFile, opts.Address, strings.Join(policies, ", "), left), nil
}
