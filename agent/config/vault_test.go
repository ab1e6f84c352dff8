package config

import (
	"strings"
	"testing"
	"time"
)

func TestVaultSectionIsCheckedOnceEnabled(t *testing.T) {
	cfg := Default()
	cfg.Vault.Address = "vault:8200" // not checked while [vault] is off
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a disabled [vault] was checked: %v", err)
	}
	cfg.Vault.Enabled = true
	cfg.Vault.AdminTokenFile = "vault-token"
	cfg.Vault.PolicyTemplate = `path "secret/*" { capabilities = ["read"] }`
	cfg.Vault.TTL, cfg.Vault.MaxTTL = Duration(2*time.Hour), Duration(time.Hour)
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad [vault] accepted")
	}
	for _, want := range []string{"vault.address: \"vault:8200\"", "vault.admin_token_file: \"vault-token\" must be the absolute path",
		"vault.policy_template: has no {NAME}", "vault.max_ttl: 1h0m0s is shorter than vault.ttl"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	ok := Default()
	ok.Vault.Enabled = true
	if err := ok.Validate(); err != nil {
		t.Errorf("the default [vault], enabled: %v", err)
	}
}

// The seed setup's variables override [vault] keys; its TTLs were plain seconds.
func TestVaultEnvironmentOverrides(t *testing.T) {
	env := map[string]string{
		"VAULT_ADDR": "https://vault.example.org:8200", "NOTEBOOK_VAULT_TOKEN_TTL": "3600",
		"NOTEBOOK_VAULT_TOKEN_MAX_TTL": "2d", "JUPYTERHUB_VAULT_TOKEN_TTL": "",
	}
	cfg := Default()
	cfg.Vault.AdminTokenTTL = Duration(time.Hour)
	cfg.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	v := cfg.Vault
	if v.Address != "https://vault.example.org:8200" || v.TTL.D() != time.Hour || v.MaxTTL.D() != 48*time.Hour || v.AdminTokenTTL.D() != time.Hour {
		t.Errorf("after the environment: %+v", v)
	}

	env = map[string]string{"JUPYTERHUB_VAULT_TOKEN_TTL": "soon"}
	cfg = Default()
	cfg.Vault.Enabled = true
	cfg.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "vault.admin_token_ttl") || !strings.Contains(err.Error(), "JUPYTERHUB_VAULT_TOKEN_TTL") {
		t.Errorf("an unreadable JUPYTERHUB_VAULT_TOKEN_TTL: %v", err)
	}
}
