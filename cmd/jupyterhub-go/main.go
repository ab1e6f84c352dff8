// Command jupyterhub-go runs a JupyterHub-compatible hub, router and systemd spawner in one daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/jupyterhub-go/jupyterhub-go/agent"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `jupyterhub-go: JupyterHub, its proxy and a systemd spawner in one daemon.

Usage:
  jupyterhub-go [--config FILE] serve           run the hub (the default command)
  jupyterhub-go [--config FILE] check-config    validate the configuration and explain problems
  jupyterhub-go [--config FILE] token create [--user NAME] [--create] [--admin] [--note TEXT] [--expires-in DURATION]
                                                print a new API token for scripts: an existing
                                                user's, or with --create --admin a new admin's
  jupyterhub-go version (or --version)          print the version

Flags:
  --config FILE   configuration file (default %s; if the default is absent, built-in
                  defaults are used: listen on 127.0.0.1:8000, PAM login, state in /var/lib/jupyterhub-go)

Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// globalFlags takes --config FILE (or --config=FILE) and --version out of args wherever they
// stand: "jupyterhub-go token create --config FILE" is as good as "jupyterhub-go --config FILE
// token create".
func globalFlags(args []string) (rest []string, cfgPath string, explicit, version bool, err error) {
	cfgPath = config.DefaultPath
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			rest = append(rest, a)
			continue
		}
		switch name {
		case "config":
			if !hasValue {
				if i+1 >= len(args) {
					return nil, "", false, false, errors.New("--config needs a file")
				}
				i++
				value = args[i]
			}
			cfgPath, explicit = value, true
		case "version":
			version = true
		default:
			rest = append(rest, a)
		}
	}
	return rest, cfgPath, explicit, version, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	usageText := func() { fmt.Fprintf(stderr, usage, config.DefaultPath) }
	args, cfgPath, explicit, showVersion, err := globalFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "jupyterhub-go: %v\n", err)
		return 2
	}
	cmd, rest := "serve", args
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	if showVersion {
		cmd = "version"
	}
	switch cmd {
	case "-h", "-help", "--help":
		cmd = "help"
	}
	if (cmd == "serve" || cmd == "check-config") && len(rest) > 0 {
		fmt.Fprintf(stderr, "jupyterhub-go: unexpected arguments %q\n", rest)
		return 2
	}
	if cmd == "version" {
		fmt.Fprintf(stdout, "jupyterhub-go %s (JupyterHub API %s)\n", version, agent.Version)
		return 0
	}
	if cmd == "help" {
		usageText()
		return 0
	}
	cfg, problems := config.Check(cfgPath, explicit)
	if cmd == "serve" || cmd == "check-config" {
		problems = append(problems, hostProblems(cfg)...)
	}
	if len(problems) > 0 {
		// Every problem at once, as path:line: key: what is wrong and what to do.
		fmt.Fprintf(stderr, "jupyterhub-go: %s has %d problem(s):\n", cfgPath, len(problems))
		for _, p := range problems {
			where := cfgPath
			if p.Line > 0 {
				where = fmt.Sprintf("%s:%d", cfgPath, p.Line)
			}
			msg := p.Message
			if p.Key != "" {
				msg = p.Key + ": " + msg
			}
			fmt.Fprintf(stderr, "  %s: %s\n", where, msg)
		}
		fmt.Fprintf(stderr, "Every key, with its default and what it is for: %s\n", config.ExamplePath)
		return 2
	}
	switch cmd {
	case "serve":
		return serve(cfg, cfgPath, stderr)
	case "check-config":
		return checkConfig(cfg, cfgPath, stdout, stderr)
	case "token":
		return token(cfg, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "jupyterhub-go: unknown command %q\n\n", cmd)
		usageText()
		return 2
	}
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(cfg config.Config, path string, stderr io.Writer) int {
	log := newLogger(cfg.Hub.LogLevel, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hub, err := agent.Open(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		if errors.As(err, new(agent.ConfigError)) {
			return 2 // restarting will not help; the unit's RestartPreventExitStatus=2 knows
		}
		return 1
	}
	defer hub.Close()
	ready := func() {
		daemon.SdNotify(false, daemon.SdNotifyReady)
		go watchdog(ctx, hub, log)
	}
	if err := hub.Run(ctx, ready); err != nil {
		log.Error("hub stopped", "err", err)
		return 1
	}
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	return 0
}

// watchdog pings systemd at half the unit's WatchdogSec, if it set one, while the hub is healthy.
func watchdog(ctx context.Context, hub *agent.Hub, log *slog.Logger) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := hub.Healthy(ctx); err != nil {
				log.Error("unhealthy; not feeding the systemd watchdog", "err", err)
				continue
			}
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}

// hostProblems are what the configuration needs of this host before the hub can start, with the
// fix; serve and check-config say the same.
func hostProblems(cfg config.Config) []config.Problem {
	if cfg.Auth.Method == "pam" {
		file := filepath.Join(cfg.Auth.PAM.ConfDir, cfg.Auth.PAM.Service)
		if _, err := os.Stat(file); err != nil {
			return []config.Problem{{Key: "auth.pam.service", Message: fmt.Sprintf(
				"%s is missing, and without it PAM would quietly use /etc/pam.d/other: install the one the packages ship "+
					"(from the source tree: install -m 0644 packaging/pam.d/jupyterhub-go %s)", file, file)}}
		}
	}
	return nil
}

func checkConfig(cfg config.Config, path string, stdout, stderr io.Writer) int {
	for _, n := range cfg.Notes() {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	switch cfg.Auth.Method {
	case "oidc":
		// Discovery proves the issuer is reachable and is who it says it is, and that the
		// client secret file is readable (and by no one else): the usual ways an OIDC setup
		// is broken.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := agent.NewOpenIDProvider(ctx, cfg, nil, newLogger("error", stderr)); err != nil {
			fmt.Fprintln(stderr, err) // it names the key
			return 2
		}
		fmt.Fprintf(stdout, "auth.oidc: discovery at %s works; register the redirect URI %s at the provider\n", cfg.Auth.OIDC.Issuer, cfg.OIDCRedirectURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fmt.Fprintln(stdout, agent.DescribeGPUs(ctx, cfg, newLogger("info", stderr)))
	vault, err := agent.DescribeVault(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err) // it names the key
		return 2
	}
	fmt.Fprintln(stdout, vault)
	fmt.Fprintf(stdout, "%s is valid: hub on %s, %s login, user servers reach the hub at %s\n",
		path, cfg.Hub.Listen, cfg.Auth.Method, cfg.APIURLFor())
	return 0
}

func token(cfg config.Config, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: jupyterhub-go token create [--user NAME] [--create] [--admin] [--note TEXT] [--expires-in DURATION]")
		return 2
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defUser := "admin"
	if len(cfg.Auth.AdminUsers) > 0 {
		defUser = cfg.Auth.AdminUsers[0]
	}
	name := fs.String("user", defUser, "user the token belongs to (must exist, unless --create)")
	create := fs.Bool("create", false, "create the user if the hub does not know them yet")
	makeAdmin := fs.Bool("admin", false, "make the user an admin (the token then holds admin scopes)")
	note := fs.String("note", "created by jupyterhub-go token create", "note stored with the token")
	expires := fs.Duration("expires-in", 0, "lifetime, e.g. 720h; 0 never expires")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if err := config.ValidUsername(*name); err != nil {
		fmt.Fprintf(stderr, "jupyterhub-go: --user: %v\n", err)
		return 2
	}
	ctx := context.Background()
	if err := os.MkdirAll(cfg.Hub.DataDir, 0o700); err != nil {
		fmt.Fprintf(stderr, "jupyterhub-go: create data dir (hub.data_dir): %v\n", err)
		return 1
	}
	st, err := store.Open(ctx, cfg.Hub.DataDir+"/jupyterhub-go.sqlite")
	if err != nil {
		fmt.Fprintf(stderr, "jupyterhub-go: %v\n", err)
		return 1
	}
	defer st.Close()
	// A typo in --user must not mint a token for a new account, nor anyone become admin unasked.
	u, err := st.GetUser(ctx, *name)
	if errors.Is(err, store.ErrNotFound) {
		if !*create {
			fmt.Fprintf(stderr, "jupyterhub-go: the hub has no user %q; check the name, or add --create (and --admin for an admin token)\n", *name)
			return 1
		}
		u, err = st.CreateUser(ctx, *name, *makeAdmin)
	} else if err == nil && *makeAdmin && !u.Admin {
		admin := true
		u, err = st.UpdateUser(ctx, u.Name, store.UserPatch{Admin: &admin})
	}
	if err != nil {
		fmt.Fprintf(stderr, "jupyterhub-go: %v\n", err)
		return 1
	}
	t := store.Token{UserID: u.ID, Kind: store.KindAPI, Scopes: []string{"inherit"}, Note: *note}
	if *expires > 0 {
		t.ExpiresAt = time.Now().Add(*expires)
	}
	_, secret, err := st.CreateToken(ctx, t)
	if err != nil {
		fmt.Fprintf(stderr, "jupyterhub-go: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, secret)
	return 0
}
