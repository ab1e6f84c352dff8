package spawner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// trickyEnv is shared with the systemd test, which checks that a real unit
// sees these values byte for byte.
var trickyEnv = map[string]string{
	"JUPYTERHUB_API_TOKEN":    "s3cr3t",
	"EMPTY":                   "",
	"SPACES":                  "  leading and trailing  ",
	"JSON":                    `{"a": "b c", "list": [1, 2], "esc": "x\"y\\z"}`,
	"DOLLAR":                  "$HOME ${USER} $(id) `id` $$",
	"BACKSLASH":               `C:\path\to\x2d\n\\`,
	"QUOTES":                  `it's "quoted"`,
	"HASH_SEMI":               "#not a comment; nor this",
	"EQUALS":                  "a=b=c",
	"MULTI_LINE":              "line1\nline2\n",
	"TAB":                     "a\tb",
	"UNICODE":                 "jörg ☃ 😀",
	"JUPYTERHUB_OAUTH_SCOPES": `["access:servers!server=alice/", "access:servers!user=alice"]`,
	"_lower_1":                "x",
}

func TestEncodeEnv(t *testing.T) {
	got, err := encodeEnv(map[string]string{"B": `a"b\c$d` + "`e", "A": "plain text"})
	if err != nil {
		t.Fatal(err)
	}
	want := "A=\"plain text\"\nB=\"a\\\"b\\\\c\\$d\\`e\"\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if b, err := encodeEnv(nil); err != nil || len(b) != 0 {
		t.Errorf("empty env: %q, %v", b, err)
	}
}

func TestEncodeEnvRejects(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"empty key":    {"": "x"},
		"digit first":  {"1A": "x"},
		"dash":         {"A-B": "x"},
		"equals":       {"A=B": "x"},
		"space":        {"A B": "x"},
		"newline key":  {"A\nB": "x"},
		"nul value":    {"A": "x\x00y"},
		"invalid utf8": {"A": "\xff"},
	} {
		if _, err := encodeEnv(env); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestEncodeEnvShell reads the file back with sh: POSIX double-quote rules are
// the ones systemd's EnvironmentFile parser follows, so this catches escaping
// mistakes without systemd. systemd_test.go checks the real parser.
func TestEncodeEnvShell(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	path := filepath.Join(t.TempDir(), "env")
	if err := writeEnvFile(path, trickyEnv); err != nil {
		t.Fatal(err)
	}
	for k, v := range trickyEnv {
		out, err := exec.Command("sh", "-c", `. "$1" && eval "printf %s \"\$$2\""`, "sh", path, k).Output()
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if string(out) != v {
			t.Errorf("%s: sh read %q, want %q", k, out, v)
		}
	}
}

func TestWriteEnvFile(t *testing.T) {
	dir := t.TempDir()
	path := envFilePath(dir, `jupyter-alice\x2dx.service`)
	if filepath.Base(path) != "jupyter-alice+x2dx.service.env" {
		t.Errorf("env file name %q", filepath.Base(path))
	}
	if err := writeEnvFile(path, map[string]string{"A": "1"}); err != nil {
		t.Fatal(err)
	}
	// A second write replaces the read-only file.
	if err := writeEnvFile(path, map[string]string{"A": "2"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Errorf("mode %v, want 0400", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != "A=\"2\"\n" {
		t.Errorf("content %q", b)
	}
	if err := writeEnvFile(path, map[string]string{"BAD-KEY": "x"}); err == nil {
		t.Error("bad key accepted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left behind: %s", strings.Join(names, ", "))
	}
	if err := removeEnvFile(path); err != nil {
		t.Fatal(err)
	}
	if err := removeEnvFile(path); err != nil {
		t.Errorf("second remove: %v", err)
	}
}
