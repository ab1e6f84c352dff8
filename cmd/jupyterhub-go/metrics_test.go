package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file written for hub.authenticate_metrics keeps working, and check-config says what to
// write instead.
func TestCheckConfigWarnsAboutTheDeprecatedMetricsKey(t *testing.T) {
	dir := t.TempDir()
	pamDir := filepath.Join(dir, "pam.d")
	if err := os.MkdirAll(pamDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pamDir, "jupyterhub-go"), []byte("auth required pam_unix.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	src := fmt.Sprintf("[hub]\ndata_dir = %q\nauthenticate_metrics = false\n[auth.pam]\nconf_dir = %q\n[gpu]\nenabled = false\n", filepath.Join(dir, "data"), pamDir)
	if err := os.WriteFile(cfgPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, out, errOut := checkConfigOf(cfgPath)
	if rc != 0 || !strings.Contains(out, "is valid") {
		t.Fatalf("check-config = %d:\n%s%s", rc, out, errOut)
	}
	if !strings.Contains(out, "hub.authenticate_metrics is deprecated") || !strings.Contains(out, "hub.metrics_public = true") {
		t.Errorf("check-config does not warn about hub.authenticate_metrics:\n%s", out)
	}
}
