package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"strconv"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/pam"
	"github.com/jupyterhub-go/jupyterhub-go/spawner"
)

// Open builds a hub wired to the real concerns the config names: PAM login and systemd units.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	auth, err := newPAMAuth(cfg.Auth.PAM, log)
	if err != nil {
		return nil, fmt.Errorf("auth.pam: %w", err)
	}
	units, err := spawner.Connect(ctx, spawner.Options{UnitPrefix: cfg.Spawner.UnitPrefix, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("connect to systemd (user servers run as systemd units; is this a systemd host and are we root?): %w", err)
	}
	return New(ctx, cfg, Deps{Auth: auth, Units: units, Logger: log})
}

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

func (p *pamAuth) Authenticate(ctx context.Context, name, password string) (Identity, error) {
	acct, err := user.Lookup(name)
	if err != nil {
		// Run PAM anyway so an unknown account takes as long to refuse as a wrong password.
		p.pam.Authenticate(ctx, name, password)
		return Identity{}, ErrBadLogin
	}
	if uid, err := strconv.Atoi(acct.Uid); err != nil || uid < p.minUID {
		p.pam.Authenticate(ctx, name, password)
		return Identity{}, ErrBadLogin
	}
	if err := p.pam.Authenticate(ctx, name, password); err != nil {
		if errors.Is(err, pam.ErrAuthFailed) {
			return Identity{}, ErrBadLogin
		}
		return Identity{}, err
	}
	groups, err := pam.Groups(name)
	if err != nil {
		return Identity{}, fmt.Errorf("look up groups of %s: %w", name, err)
	}
	return Identity{Name: name, Groups: groups}, nil
}
