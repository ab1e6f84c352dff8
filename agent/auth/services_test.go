package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
)

// A service's token file readable by others is refused at start, with the fix in the message.
func TestServiceTokenFilesMustBePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef\n"), 0o644)
	cfg := defaultConfig()
	cfg.Services = []config.Service{{Name: "grader", APITokenFile: path}}
	if _, err := New(cfg, nil, nil, make([]byte, 32), make([]byte, 32), nil, Options{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a 0644 token file: err = %v, want it refused", err)
	}
	os.Chmod(path, 0o600)
	if _, err := New(cfg, nil, nil, make([]byte, 32), make([]byte, 32), nil, Options{}); err != nil {
		t.Errorf("a 0600 token file: %v", err)
	}
}
