package spawner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// encodeEnv renders env in the syntax systemd's EnvironmentFile= parser reads
// (systemd.exec(5)): every value double-quoted, with \ " ` $ backslash-escaped
// because those four are the only escapes the parser undoes inside double
// quotes. Newlines need no escape there, so even multi-line values survive.
// Keys are sorted so the file is stable and diffable.
func encodeEnv(env map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var b bytes.Buffer
	for _, k := range keys {
		if !validEnvName(k) {
			return nil, fmt.Errorf("invalid environment variable name %q", k)
		}
		v := env[k]
		// systemd drops (not truncates) values that are not UTF-8, and a NUL
		// cannot reach a process environment at all; fail loudly instead.
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("environment variable %s: value is not valid UTF-8 text", k)
		}
		b.WriteString(k)
		b.WriteString(`="`)
		for i := 0; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\', '"', '`', '$':
				b.WriteByte('\\')
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteString("\"\n")
	}
	return b.Bytes(), nil
}

// validEnvName is the portable shell-name rule; systemd accepts a little more,
// but nothing a Jupyter server needs.
func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// envFilePath maps a unit to its EnvironmentFile. systemd glob(3)-expands
// EnvironmentFile= paths, and escaped unit names contain backslashes that
// glob would eat ("\x2d" would match "x2d"), so '\' becomes '+', which no
// unit name contains; the mapping stays one-to-one.
func envFilePath(dir, unit string) string {
	return filepath.Join(dir, strings.ReplaceAll(unit, `\`, "+")+".env")
}

// writeEnvFile replaces path atomically so a unit starting concurrently never
// reads a half-written file, and creates it 0400 so only root (systemd, which
// reads it before dropping privileges) can read the secrets in it.
func writeEnvFile(path string, env map[string]string) (err error) {
	data, err := encodeEnv(env)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o400); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func removeEnvFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
