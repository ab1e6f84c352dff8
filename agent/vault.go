package agent

import (
	"context"
	"log/slog"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/vault"
)

// openVault is the [vault] section's client, its admin token renewed until ctx ends; nil when
// the section is off. A token file it cannot use is a configuration error.
func openVault(ctx context.Context, c config.Vault, log *slog.Logger) (*vault.Vault, error) {
	if !c.Enabled {
		return nil, nil
	}
	v, err := vault.New(ctx, vaultOptions(c, log))
	if err != nil {
		return nil, ConfigError{err}
	}
	return v, nil
}

// vaultOptions is the [vault] section as the vault package takes it.
func vaultOptions(c config.Vault, log *slog.Logger) vault.Options {
	return vault.Options{
		Address: c.Address, CAFile: c.CAFile, AdminTokenFile: c.AdminTokenFile, AdminTokenTTL: c.AdminTokenTTL.D(),
		PolicyTemplate: c.PolicyTemplate, TTL: c.TTL.D(), MaxTTL: c.MaxTTL.D(), Required: c.Required, Logger: log,
	}
}

// vaultStep is the vault spawn step, or nil without [vault] (a nil *vault.Vault would be a
// step that is not nil).
func vaultStep(v *vault.Vault) servers.Step {
	if v == nil {
		return nil
	}
	return v.Step()
}

// DescribeVault says what check-config finds of [vault]: the token file the hub would refuse
// is an error, what Vault says of the token the description.
func DescribeVault(ctx context.Context, cfg config.Config) (string, error) {
	if !cfg.Vault.Enabled {
		return "vault: off (vault.enabled = false): servers get no Vault token", nil
	}
	return vault.Describe(ctx, vaultOptions(cfg.Vault, nil))
}
