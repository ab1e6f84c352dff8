package vault_test

// These tests run against a real Vault server (vault server -dev on loopback; test/vault/build.sh
// builds the binary, JHGO_VAULT_BIN names it), with the vault step inside the real lifecycle
// core (agent/servers) over a real sqlite store and hubtest's stand-in units, as a hub runs it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/vault"
)

// devVault is a real Vault dev server on a loopback port, with "root" as its root token.
type devVault struct {
	addr string
	root *api.Client
	cmd  *exec.Cmd
}

func startVault(t *testing.T) *devVault {
	t.Helper()
	bin := os.Getenv("JHGO_VAULT_BIN")
	if bin == "" {
		t.Skip("JHGO_VAULT_BIN is not set: these tests need a real Vault server; build one with test/vault/build.sh (make test does) and set JHGO_VAULT_BIN to the path it prints")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("JHGO_VAULT_BIN: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostport := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address="+hostport, "-dev-no-store-token")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "VAULT_TOKEN=", "VAULT_ADDR=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	v := &devVault{addr: "http://" + hostport, cmd: cmd}
	cfg := api.DefaultConfig()
	cfg.Address = v.addr
	cfg.MaxRetries = 0
	if v.root, err = api.NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	v.root.SetToken("root")
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := v.root.Sys().Health(); err == nil {
			// The dev server mounts kv v2 at secret/ just after it starts listening.
			if m, err := v.root.Sys().ListMounts(); err == nil && m["secret/"] != nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault server -dev did not come up:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return v
}

// adminToken makes a token with contrib/vault's admin policy, as an operator's setup does, and
// writes it to a 0600 file (or into the file given).
func (v *devVault) adminToken(t *testing.T, ttl time.Duration, file string) (token, path string) {
	t.Helper()
	return v.adminTokenMax(t, ttl, 0, file)
}

// adminTokenMax is adminToken with an explicit max TTL (0: none).
func (v *devVault) adminTokenMax(t *testing.T, ttl, maxTTL time.Duration, file string) (token, path string) {
	t.Helper()
	policy, err := os.ReadFile("../contrib/vault/admin-policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.root.Sys().PutPolicy("jupyterhub-admin", string(policy)); err != nil {
		t.Fatal(err)
	}
	renewable := true
	sec, err := v.root.Auth().Token().Create(&api.TokenCreateRequest{
		Policies: []string{"jupyterhub-admin"}, NoDefaultPolicy: true, TTL: fmt.Sprintf("%ds", int(ttl.Seconds())),
		Renewable: &renewable, DisplayName: "jupyterhub", ExplicitMaxTTL: fmt.Sprintf("%ds", int(maxTTL.Seconds())),
	})
	if err != nil {
		t.Fatal(err)
	}
	if file == "" {
		file = filepath.Join(t.TempDir(), "vault-token")
	}
	if err := os.WriteFile(file+".new", []byte(sec.Auth.ClientToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".new", file); err != nil {
		t.Fatal(err)
	}
	return sec.Auth.ClientToken, file
}

// as is a client of the same Vault acting with token.
func (v *devVault) as(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := v.root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// logs is slog output kept for checks; tokens must never be in it.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// mustNotHold fails if a secret is in the log.
func (l *logs) mustNotHold(t *testing.T, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(l.String(), s) {
			t.Errorf("a token is in the log:\n%s", l.String())
		}
	}
}

// envSpy stands between the vault step and the unit, where the unit step would write the
// server's environment file, and keeps what it would have written.
type envSpy struct {
	mu  sync.Mutex
	env map[string]string
}

func (*envSpy) Name() string { return "env" }
func (s *envSpy) Start(ctx context.Context, job *servers.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.env = map[string]string{}
	for k, v := range job.Env {
		s.env[k] = v
	}
	return nil
}
func (*envSpy) Stop(ctx context.Context, sv store.Server) error { return nil }
func (s *envSpy) get(k string) string                           { s.mu.Lock(); defer s.mu.Unlock(); return s.env[k] }

// hub is one hub process: the vault client and a core with the vault step before the stand-in
// unit (and a step that records the environment the unit would get).
type hub struct {
	*hubtest.Core
	t   *testing.T
	v   *vault.Vault
	env *envSpy
}

func startHub(t *testing.T, dir string, units *hubtest.Units, opts vault.Options) *hub {
	t.Helper()
	v, err := vault.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	env := &envSpy{}
	core := hubtest.StartCore(t, hubtest.CoreOptions{
		Dir: dir, Units: units, Logger: opts.Logger,
		Steps: func(*store.Store) []servers.Step { return []servers.Step{v.Step(), env} },
	})
	return &hub{Core: core, t: t, v: v, env: env}
}

// spawn starts the user's server and returns how it ended and every message it sent.
func (h *hub) spawn(u store.User) (servers.Event, []string) {
	h.t.Helper()
	return hubtest.Finished(h.t, h.Spawn(u, ""))
}

func options(addr, tokenFile string, l *logs) vault.Options {
	return vault.Options{Address: addr, AdminTokenFile: tokenFile, TTL: time.Hour, MaxTTL: 2 * time.Hour, Required: true, Logger: l.logger()}
}

// revoked says whether Vault no longer knows token.
func revoked(t *testing.T, v *devVault, token string) bool {
	t.Helper()
	_, err := v.as(t, token).Auth().Token().LookupSelf()
	var re *api.ResponseError
	if err != nil && !(errors.As(err, &re) && re.StatusCode == 403) {
		t.Fatalf("look the token up: %v", err)
	}
	return err != nil
}

func status(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestAServersTokenReachesOnlyItsOwnersSecretsAndIsRevokedAtStop(t *testing.T) {
	v := startVault(t)
	l := &logs{}
	admin, file := v.adminToken(t, time.Hour, "")
	h := startHub(t, t.TempDir(), hubtest.NewUnits(), options(v.addr, file, l))
	alice := h.User("alice")

	ev, msgs := h.spawn(alice)
	if !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}
	token := h.env.get("NOTEBOOK_VAULT_TOKEN")
	if token == "" || h.env.get("VAULT_ADDR") != v.addr {
		t.Fatalf("server environment has token %t, VAULT_ADDR %q", token != "", h.env.get("VAULT_ADDR"))
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "Vault token ready (policy jupyter-user-alice") {
		t.Errorf("progress: %q", msgs)
	}
	c := v.as(t, token)

	// Her own secrets: write, read, list.
	if _, err := c.KVv2("secret").Put(context.Background(), "jupyter/users/alice/x", map[string]any{"password": "hunter2"}); err != nil {
		t.Fatalf("put alice/x: %v", err)
	}
	got, err := c.KVv2("secret").Get(context.Background(), "jupyter/users/alice/x")
	if err != nil || got.Data["password"] != "hunter2" {
		t.Fatalf("get alice/x: %v %v", got, err)
	}
	// Not bob's, nor anything else.
	if _, err := c.Logical().Write("secret/data/jupyter/users/bob/x", map[string]any{"data": map[string]any{"a": "b"}}); status(err) != 403 {
		t.Errorf("put bob/x: %v, want 403", err)
	}
	if _, err := c.Logical().Read("secret/data/jupyter/users/bob/x"); status(err) != 403 {
		t.Errorf("get bob/x: %v, want 403", err)
	}
	if _, err := c.Auth().Token().Create(&api.TokenCreateRequest{}); status(err) != 403 {
		t.Errorf("the server's token made a token: %v", err)
	}

	// What it is: the configured TTLs, alice's policy alone, renewable, with its user on it.
	self, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	ttl, _ := self.TokenTTL()
	maxTTL, _ := self.Data["explicit_max_ttl"].(json.Number).Int64()
	policies, _ := self.TokenPolicies()
	meta, _ := self.TokenMetadata()
	renewable, _ := self.TokenIsRenewable()
	if ttl < time.Hour-time.Minute || ttl > time.Hour || maxTTL != 7200 || !renewable {
		t.Errorf("ttl %s, explicit max ttl %ds, renewable %v; want 1h, 7200 s, true", ttl, maxTTL, renewable)
	}
	if fmt.Sprint(policies) != "[jupyter-user-alice]" || meta["user"] != "alice" || meta["server"] != "" {
		t.Errorf("policies %v, metadata %v", policies, meta)
	}
	if orphan, _ := self.Data["orphan"].(bool); !orphan {
		t.Errorf("not an orphan: %v", self.Data)
	}
	renewed, err := c.Auth().Token().RenewSelf(1800)
	if err != nil {
		t.Fatalf("renew-self: %v", err)
	}
	if ttl, _ := renewed.TokenTTL(); ttl != 30*time.Minute {
		t.Errorf("renewed for %s, want 30m", ttl)
	}
	accessor := h.Server(alice).StepState["vault"]
	if accessor == "" || accessor != self.Data["accessor"] {
		t.Errorf("stored accessor %q, token's %v", accessor, self.Data["accessor"])
	}

	sv := h.Server(alice)
	h.Stop(alice)
	if !revoked(t, v, token) {
		t.Error("the token still works after the server stopped")
	}
	if st := h.Server(alice).StepState; len(st) != 0 {
		t.Errorf("the accessor is still stored: %v", st)
	}
	// Revoking again (a retried stop) is no error.
	if err := h.v.Step().Stop(context.Background(), sv); err != nil || h.v.Pending() != 0 {
		t.Errorf("revoking a revoked token: %v (pending %d)", err, h.v.Pending())
	}
	l.mustNotHold(t, token, admin)
}

func TestAHubStartRevokesTheTokenOfAServerStoppedBehindItsBack(t *testing.T) {
	v := startVault(t)
	l := &logs{}
	admin, file := v.adminToken(t, time.Hour, "")
	dir, units := t.TempDir(), hubtest.NewUnits()
	h := startHub(t, dir, units, options(v.addr, file, l))
	alice := h.User("alice")
	if ev, _ := h.spawn(alice); !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}
	token := h.env.get("NOTEBOOK_VAULT_TOKEN")

	// The hub is SIGKILLed (its memory is gone; its record says running), and alice's unit
	// stops while no hub watches.
	h.v.Close()
	units.Stop(context.Background(), "jupyter-alice.service")
	if revoked(t, v, token) {
		t.Fatal("the token was revoked before any hub knew the server stopped")
	}
	again := startHub(t, dir, units, options(v.addr, file, l))
	deadline := time.Now().Add(20 * time.Second)
	for !revoked(t, v, token) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted hub did not revoke the token; its log:\n%s", l.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for again.Server(alice).State != store.Stopped && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if sv := again.Server(alice); sv.State != store.Stopped || len(sv.StepState) != 0 {
		t.Errorf("after reconcile: state %s, step state %v", sv.State, sv.StepState)
	}
	l.mustNotHold(t, token, admin)
}

func TestTheAdminTokenIsRenewedBeforeItExpires(t *testing.T) {
	v := startVault(t)
	l := &logs{}
	admin, file := v.adminToken(t, 4*time.Second, "")
	opts := options(v.addr, file, l)
	vault.SetMinRenewPeriod(&opts, 200*time.Millisecond)
	h := startHub(t, t.TempDir(), hubtest.NewUnits(), opts)

	time.Sleep(7 * time.Second) // past the token's first TTL
	self, err := v.as(t, admin).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("the admin token expired: %v\n%s", err, l.String())
	}
	if ttl, _ := self.TokenTTL(); ttl < time.Second {
		t.Errorf("admin token has %s left", ttl)
	}
	if state, expires := h.v.State(); state != vault.StateOK || time.Until(expires) <= 0 {
		t.Errorf("state %s, expires %s", state, expires)
	}
	if ev, _ := h.spawn(h.User("alice")); !ev.Ready {
		t.Errorf("spawn with the renewed token: %s", ev.Message)
	}
	l.mustNotHold(t, admin)
}

func TestAnAdminTokenNearItsMaxTTLIsReportedExpiringThenDead(t *testing.T) {
	v := startVault(t)
	l := &logs{}
	_, file := v.adminTokenMax(t, 8*time.Second, 8*time.Second, "")
	opts := options(v.addr, file, l)
	vault.SetMinRenewPeriod(&opts, 300*time.Millisecond) // expiring: under 3 s left after a renewal
	h := startHub(t, t.TempDir(), hubtest.NewUnits(), opts)
	waitState(t, h.v, vault.StateExpiring, l)
	if gauge(t, h.v, "expiring") != 1 || !strings.Contains(l.String(), "admin token expires soon and cannot be renewed past that") {
		t.Errorf("expiring: gauge %v, log:\n%s", gauge(t, h.v, "expiring"), l.String())
	}
	waitState(t, h.v, vault.StateDead, l)
}

func TestANewTokenInTheFileReplacesARevokedOneWithoutARestart(t *testing.T) {
	v := startVault(t)
	l := &logs{}
	old, file := v.adminToken(t, time.Hour, "")
	opts := options(v.addr, file, l)
	vault.SetMinRenewPeriod(&opts, 200*time.Millisecond)
	h := startHub(t, t.TempDir(), hubtest.NewUnits(), opts)
	waitState(t, h.v, vault.StateOK, l)

	if err := v.root.Auth().Token().RevokeOrphan(old); err != nil {
		t.Fatal(err)
	}
	waitState(t, h.v, vault.StateDead, l)
	if gauge(t, h.v, "dead") != 1 || gauge(t, h.v, "ok") != 0 {
		t.Error("the gauge does not say the admin token is dead")
	}
	if !strings.Contains(l.String(), "Vault refuses the hub's admin token") {
		t.Errorf("no log line says the admin token is dead:\n%s", l.String())
	}
	alice := h.User("alice")
	if ev, _ := h.spawn(alice); !ev.Failed || !strings.Contains(ev.Message, "refused the hub's admin token") {
		t.Errorf("spawn with a dead admin token: %s", ev.Message)
	}

	fresh, _ := v.adminToken(t, time.Hour, file)
	waitState(t, h.v, vault.StateOK, l)
	if ev, _ := h.spawn(alice); !ev.Ready {
		t.Errorf("spawn after the new token: %s", ev.Message)
	}
	l.mustNotHold(t, old, fresh, h.env.get("NOTEBOOK_VAULT_TOKEN"))
}

func TestARequiredVaultThatIsSealedOrDownFailsTheSpawnNamingVault(t *testing.T) {
	v := startVault(t)
	l := &logs{}
	_, file := v.adminToken(t, time.Hour, "")
	units := hubtest.NewUnits()
	h := startHub(t, t.TempDir(), units, options(v.addr, file, l))
	alice := h.User("alice")

	if err := v.root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	ev, _ := h.spawn(alice)
	if !ev.Failed || !strings.Contains(ev.Message, "Vault at "+v.addr+" is sealed") {
		t.Errorf("spawn with Vault sealed: %s", ev.Message)
	}
	noUnitAndStopped(t, h, alice)

	v.cmd.Process.Kill()
	v.cmd.Wait()
	ev, _ = h.spawn(alice)
	if !ev.Failed || !strings.Contains(ev.Message, "Vault at "+v.addr+" cannot be reached") {
		t.Errorf("spawn with Vault down: %s", ev.Message)
	}
	noUnitAndStopped(t, h, alice)
	waitState(t, h.v, vault.StateUnreachable, l)
}

func noUnitAndStopped(t *testing.T, h *hub, u store.User) {
	t.Helper()
	if running, _ := h.Units.List(context.Background()); len(running) != 0 {
		t.Errorf("units left: %v", running)
	}
	if sv := h.Server(u); sv.State != store.Stopped || len(sv.StepState) != 0 {
		t.Errorf("after the failed spawn: state %s, step state %v", sv.State, sv.StepState)
	}
	if h.env.get("NOTEBOOK_VAULT_TOKEN") != "" {
		t.Error("the spawn got as far as the unit")
	}
}

func TestAnOptionalVaultThatIsDownLetsTheServerStartWithoutAToken(t *testing.T) {
	v := startVault(t)
	l := &logs{}
	_, file := v.adminToken(t, time.Hour, "")
	opts := options(v.addr, file, l)
	opts.Required = false
	h := startHub(t, t.TempDir(), hubtest.NewUnits(), opts)
	if err := v.root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	alice := h.User("alice")
	ev, msgs := h.spawn(alice)
	if !ev.Ready {
		t.Fatalf("spawn failed: %s", ev.Message)
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "No Vault token for this server: Vault at "+v.addr+" is sealed") {
		t.Errorf("progress does not say there is no token: %q", msgs)
	}
	if h.env.get("NOTEBOOK_VAULT_TOKEN") != "" {
		t.Error("the server got a NOTEBOOK_VAULT_TOKEN")
	}
	h.Stop(alice)
	if sv := h.Server(alice); sv.State != store.Stopped {
		t.Errorf("stop: %s", sv.State)
	}
}

func waitState(t *testing.T, v *vault.Vault, want string, l *logs) {
	t.Helper()
	// The state changes at the next renewal, up to ten test periods away; a loaded 2-core host
	// can take longer than that to get there, so the deadline only catches a hang.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if state, _ := v.State(); state == want {
			return
		}
		if time.Now().After(deadline) {
			state, _ := v.State()
			t.Fatalf("admin token state %q, want %q; log:\n%s", state, want, l.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gauge is jupyterhub_vault_admin_token_state{state=...} as /hub/metrics would serve it.
func gauge(t *testing.T, v *vault.Vault, state string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(v.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "jupyterhub_vault_admin_token_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "state" && lp.GetValue() == state {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no jupyterhub_vault_admin_token_state{state=%q}", state)
	return 0
}

func TestNamesVaultCannotTakeAreHashed(t *testing.T) {
	for name, want := range map[string]string{
		"alice": "alice", "a.b-c_d": "a.b-c_d", "_svc": "_svc",
		"alice@example.org": "u-", "u-1234": "u-", "a..b": "u-",
	} {
		got := vault.PathName(name)
		if got != want && !(want == "u-" && strings.HasPrefix(got, "u-") && len(got) == 18) {
			t.Errorf("PathName(%q) = %q, want %q", name, got, want)
		}
	}
	if vault.PathName("alice@example.org") == vault.PathName("bob@example.org") {
		t.Error("two names map to one")
	}
	if got := vault.PolicyName("alice"); got != "jupyter-user-alice" {
		t.Errorf("PolicyName = %q", got)
	}
}

func TestATokenFileOthersCanReadIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "vault-token")
	os.WriteFile(file, []byte("hvs.x\n"), 0o640)
	if _, err := vault.ReadTokenFile(file); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a 0640 file: %v", err)
	}
	os.Chmod(file, 0o600)
	if tok, err := vault.ReadTokenFile(file); err != nil || tok != "hvs.x" {
		t.Errorf("a 0600 file: %q, %v", tok, err)
	}
}
