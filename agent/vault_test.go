package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// [vault] puts its step after the GPUs and before the unit; off, there is none.
func TestVaultStepComesBeforeTheUnitWhenEnabled(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.GPU.Enabled = false
	if v, err := openVault(context.Background(), cfg.Vault, log); v != nil || err != nil {
		t.Fatalf("[vault] off: %v, %v", v, err)
	}
	cfg.Vault.Enabled = true
	cfg.Vault.AdminTokenFile = filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(cfg.Vault.AdminTokenFile, []byte("hvs.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Vault.Address = "http://127.0.0.1:1" // nothing answers; the hub starts anyway
	v, err := openVault(context.Background(), cfg.Vault, log)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	alloc, err := NewAllocator(context.Background(), cfg, st, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range spawnSteps(cfg, nil, alloc, v, log) {
		names = append(names, s.Name())
	}
	if !reflect.DeepEqual(names, []string{"gpu", "vault", "unit"}) {
		t.Errorf("steps %q, want gpu, vault, unit", names)
	}
}

// A token file others can read is a configuration error that says how to fix it.
func TestVaultRefusesATokenFileOthersCanRead(t *testing.T) {
	c := config.Default().Vault
	c.Enabled = true
	c.AdminTokenFile = filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(c.AdminTokenFile, []byte("hvs.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := openVault(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var ce ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "chmod 600 "+c.AdminTokenFile) {
		t.Errorf("a 0644 token file: %v", err)
	}
}
