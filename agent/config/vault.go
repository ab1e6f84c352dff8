package config

import (
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Vault is the [vault] section: a Vault token of its own for each server, made at spawn and
// revoked at stop (the vault package).
type Vault struct {
	Enabled bool `toml:"enabled"`
	// Address is Vault's URL; VAULT_ADDR in the hub's environment overrides it. The servers
	// get it as VAULT_ADDR too.
	Address string `toml:"address"`
	// CAFile is a PEM bundle to check Vault's certificate with; "" uses the system's.
	CAFile string `toml:"ca_file"`
	// AdminTokenFile holds the hub's own Vault token (mode 0600; contrib/vault/admin-policy.hcl).
	AdminTokenFile string `toml:"admin_token_file"`
	// AdminTokenTTL is the TTL the hub asks for each time it renews its admin token
	// (JUPYTERHUB_VAULT_TOKEN_TTL in the hub's environment); "0s" asks for the token's own.
	AdminTokenTTL Duration `toml:"admin_token_ttl"`
	// PolicyTemplate is the policy of each user's token, in Vault's HCL, with {NAME} for the
	// user's name; "" is the default (the user's own secret/jupyter/users/{NAME}/ and the
	// token's lookup-self and renew-self).
	PolicyTemplate string `toml:"policy_template"`
	// TTL and MaxTTL are each server token's ttl and explicit_max_ttl
	// (NOTEBOOK_VAULT_TOKEN_TTL and NOTEBOOK_VAULT_TOKEN_MAX_TTL in the hub's environment).
	TTL    Duration `toml:"ttl"`
	MaxTTL Duration `toml:"max_ttl"`
	// Required fails a spawn when Vault cannot make its token (down, sealed, the hub's token
	// refused); false starts the server without one and says so on the progress stream.
	Required bool `toml:"required"`
}

// The seed setup's environment variables for [vault] (ApplyEnv).
const (
	EnvVaultAddress     = "VAULT_ADDR"                   // vault.address
	EnvVaultTTL         = "NOTEBOOK_VAULT_TOKEN_TTL"     // vault.ttl
	EnvVaultMaxTTL      = "NOTEBOOK_VAULT_TOKEN_MAX_TTL" // vault.max_ttl
	EnvVaultAdminTTL    = "JUPYTERHUB_VAULT_TOKEN_TTL"   // vault.admin_token_ttl
	vaultDefaultAddress = "http://127.0.0.1:8200"
)

func defaultVault() Vault {
	return Vault{
		Address:        vaultDefaultAddress,
		AdminTokenFile: "/etc/jupyterhub-go/vault-token",
		TTL:            Duration(24 * time.Hour),
		MaxTTL:         Duration(7 * 24 * time.Hour),
		Required:       true,
	}
}

// applyEnv overrides [vault] keys from the environment. A duration that does not parse is
// kept as the key's value would be: Validate names the variable (envVaultBad).
func (v *Vault) applyEnv(lookup func(string) (string, bool)) {
	if s, ok := lookup(EnvVaultAddress); ok && s != "" {
		v.Address = s
	}
	for env, d := range map[string]*Duration{EnvVaultTTL: &v.TTL, EnvVaultMaxTTL: &v.MaxTTL, EnvVaultAdminTTL: &v.AdminTokenTTL} {
		s, ok := lookup(env)
		if !ok || s == "" {
			continue
		}
		// The seeds wrote plain seconds ("86400") as Vault does; Go durations work too.
		if isDigits(s) {
			s += "s"
		}
		if err := d.UnmarshalText([]byte(s)); err != nil {
			*d = -1 // refused by validate, which names the variable
		}
	}
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// validate checks [vault] once it is enabled.
func (v Vault) validate(bad func(key, format string, args ...any)) {
	if u, err := url.Parse(v.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("vault.address", "%q must be Vault's http(s) URL (or %s in the hub's environment), e.g. \"https://vault.example.org:8200\"", v.Address, EnvVaultAddress)
	}
	if v.CAFile != "" && !filepath.IsAbs(v.CAFile) {
		bad("vault.ca_file", "%q must be an absolute path, e.g. \"/etc/ssl/certs/vault-ca.pem\"", v.CAFile)
	}
	if !filepath.IsAbs(v.AdminTokenFile) {
		bad("vault.admin_token_file", "%q must be the absolute path of the file holding the hub's Vault token, e.g. \"/etc/jupyterhub-go/vault-token\"", v.AdminTokenFile)
	}
	if v.AdminTokenTTL < 0 {
		bad("vault.admin_token_ttl", "must be a duration such as \"1h\" (or seconds in %s), or \"0s\" for the token's own TTL", EnvVaultAdminTTL)
	}
	if v.PolicyTemplate != "" && !strings.Contains(v.PolicyTemplate, "{NAME}") {
		bad("vault.policy_template", "has no {NAME}: every user's token would reach the same secrets; use {NAME} where the user's name goes in each path")
	}
	switch {
	case v.TTL.D() < time.Minute:
		bad("vault.ttl", "%s: the servers' tokens need a TTL of a minute or more, e.g. \"24h\" (or seconds in %s)", v.TTL.D(), EnvVaultTTL)
	case v.MaxTTL < v.TTL:
		bad("vault.max_ttl", "%s is shorter than vault.ttl (%s): a token cannot live past its max TTL; make it at least as long, e.g. \"7d\" (or seconds in %s)", v.MaxTTL.D(), v.TTL.D(), EnvVaultMaxTTL)
	}
}
