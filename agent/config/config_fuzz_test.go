package config

import (
	"encoding"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// parseSeeds are the documents the unit tests use, the shipped examples, and
// values near the edges of what the decoder accepts.
func parseSeeds(f *testing.F) {
	for _, p := range []string{"../../contrib/config.example.toml", "../../contrib/keycloak/config.toml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"[hub]\nlisten = \"0.0.0.0:9000\"\ncookie_max_age = \"7d\"\n[spawner]\nmemory_max = \"512M\"\ncpu_quota = \"150%\"\ntasks_max = 64\nstart_timeout = \"3m\"\nenv = { JUPYTERHUB_SINGLEUSER_APP = \"notebook.notebookapp.NotebookApp\" }\n",
		"[spawner]\nmemory_maxx = \"1G\"\n",
		"[hub]\nlisten = \"8000\"",
		"[hub]\nbase_url = \"jupyter\"",
		"[hub]\ntrusted_proxies = [\"10.0.0.300\"]",
		"[auth]\nmethod = \"ldap\"",
		"[auth]\nmethod = \"oidc\"\n[auth.oidc]\nissuer = \"https://sso.example.org/realms/main\"\nauth_params = { kc_idp_hint = \"github\" }",
		"[auth]\nadmin_users = [\"Alice\", \"../x\"]",
		"[spawner]\ncmd = [\"jupyterhub-singleuser\"]",
		"[spawner]\nslice = \"users\"",
		"[spawner]\nport_range = \"80-90\"",
		"[spawner]\nmemory_max = \"lots\"",
		"[spawner]\nstart_timeout = \"soon\"",
		"[spawner]\nmemory_max = 1024\ncpu_quota = 1.5",
		"[spawner]\nenv = \"FOO=bar\"",
		"[spawner.env]\nA = 1",
		"spawner.env.A = \"1\"",
		"[auth.oidc]\nauth_params = [\"kc_idp_hint=github\"]",
		"[spawner]\ntasks_max = -1",
		"[spawner]\nmemory_max = \"NaN\"\ncpu_quota = \"inf\"",
		"[hub]\ncookie_max_age = \"1e300d\"",
		"[spawner]\nCMD = [\"/bin/x\"]\nmemory_max = \"1G\"\nMemory_Max = \"4G\"",
		"hub = 1",
		"[hub]\n[hub]",
		"x = [",
	} {
		f.Add([]byte(s))
	}
}

// locates reports whether a Parse error says where the problem is: a line, a key, or the
// unknown keys by name.
var locates = regexp.MustCompile(`^(line \d+: |toml: line \d+ \(last key "|toml: \(last key "|unknown key\(s\) |[a-z_]+\.[a-z_.]+: )`)

// namesKey matches one Validate problem: it starts with the key (or keys) it is about.
var namesKey = regexp.MustCompile(`^[a-z_]+(\[\d+\])?(\.[a-z_]+)+(/[a-z_]+)*: `)

// FuzzParse: Parse, Validate and the derived URLs never panic on any bytes; errors locate the
// problem and Validate's name a key; a document that parses is what the Config holds, key by
// key, and parsing it over the documented defaults (contrib/config.example.toml) instead of
// Default() gives the same Config.
func FuzzParse(f *testing.F) {
	parseSeeds(f)
	example, err := os.ReadFile("../../contrib/config.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		perr := Parse(data, &cfg)
		verr := cfg.Validate()
		_, _, _ = cfg.Spawner.Ports()
		_, _, _ = cfg.APIURLFor(), cfg.OIDCRedirectURL(), cfg.OIDCPostLogoutURL()
		if perr != nil {
			if !locates.MatchString(perr.Error()) {
				t.Fatalf("Parse error does not say where: %v", perr)
			}
			return
		}
		if verr != nil {
			var errs []error
			if j, ok := verr.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			} else {
				errs = []error{verr}
			}
			for _, e := range errs {
				if !namesKey.MatchString(e.Error()) || strings.Contains(e.Error(), "\n") {
					t.Fatalf("Validate error does not start with its key: %q", e.Error())
				}
			}
		}

		var doc map[string]any
		if _, err := toml.Decode(string(data), &doc); err != nil {
			t.Fatalf("Parse accepted what toml.Decode refuses: %v", err)
		}
		holds(t, "", doc, reflect.ValueOf(cfg))

		over := Default()
		if err := Parse(example, &over); err != nil {
			t.Fatal(err)
		}
		if err := Parse(data, &over); err != nil {
			t.Fatalf("parses over Default() but not over the example config: %v", err)
		}
		a, b := cfg, over
		dropEmpty(reflect.ValueOf(&a).Elem())
		dropEmpty(reflect.ValueOf(&b).Elem())
		if !equalBits(a, b) {
			t.Fatalf("over Default(): %+v\nover the example: %+v", a, b)
		}
	})
}

// holds checks that struct v holds every key of the decoded TOML table doc as written.
func holds(t *testing.T, path string, doc map[string]any, v reflect.Value) {
	t.Helper()
	fields := map[string]reflect.Value{}
	for i := 0; i < v.NumField(); i++ {
		if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ","); tag != "" {
			fields[tag] = v.Field(i)
		}
	}
	for k, val := range doc {
		key := strings.TrimPrefix(path+"."+k, ".")
		fv, ok := fields[k]
		if !ok {
			t.Fatalf("Parse accepted unknown key %s", key)
		}
		if u, ok := reflect.New(fv.Type()).Interface().(encoding.TextUnmarshaler); ok {
			var text string
			switch x := val.(type) {
			case string:
				text = x
			case int64:
				text = strconv.FormatInt(x, 10)
			case float64:
				text = fmt.Sprintf("%f", x)
			default:
				t.Fatalf("%s: a %T was accepted", key, val)
			}
			if err := u.UnmarshalText([]byte(text)); err != nil {
				t.Fatalf("%s = %q was accepted, but on its own: %v", key, text, err)
			}
			if got := reflect.ValueOf(u).Elem().Interface(); !equalBits(got, fv.Interface()) {
				t.Fatalf("%s = %q holds %v, not %v", key, text, fv.Interface(), got)
			}
			continue
		}
		bad := func() {
			t.Fatalf("%s = %#v (%T) was accepted, but the config holds %#v", key, val, val, fv.Interface())
		}
		switch fv.Kind() {
		case reflect.Struct:
			sub, ok := val.(map[string]any)
			if !ok {
				bad()
			}
			holds(t, key, sub, fv)
		case reflect.Map:
			m, ok := val.(map[string]any)
			if !ok || fv.Len() != len(m) {
				bad()
			}
			for mk, mv := range m {
				if s, ok := mv.(string); !ok || fv.MapIndex(reflect.ValueOf(mk)).String() != s {
					bad()
				}
			}
		case reflect.Slice:
			l, ok := val.([]any)
			if !ok || fv.Len() != len(l) {
				bad()
			}
			for i, e := range l {
				if s, ok := e.(string); !ok || fv.Index(i).String() != s {
					bad()
				}
			}
		case reflect.String:
			if s, ok := val.(string); !ok || fv.String() != s {
				bad()
			}
		case reflect.Bool:
			if b, ok := val.(bool); !ok || fv.Bool() != b {
				bad()
			}
		case reflect.Int, reflect.Int64:
			if n, ok := val.(int64); !ok || fv.Int() != n {
				bad()
			}
		case reflect.Uint64:
			if n, ok := val.(int64); !ok || n < 0 || fv.Uint() != uint64(n) {
				bad()
			}
		case reflect.Pointer: // a key whose absence means something (hub.authenticate_metrics)
			if b, ok := val.(bool); !ok || fv.IsNil() || fv.Elem().Kind() != reflect.Bool || fv.Elem().Bool() != b {
				bad()
			}
		default:
			t.Fatalf("%s: no check for a %s field; add one", key, fv.Kind())
		}
	}
}

// dropEmpty sets empty slices and maps to nil, so that "[]" and "not set" compare equal.
func dropEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			dropEmpty(v.Field(i))
		}
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
		}
	}
}

// equalBits is reflect.DeepEqual, except that a float equals itself even when it is NaN.
func equalBits(a, b any) bool {
	return reflect.DeepEqual(a, b) || fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

// FuzzValidUsername: the rule is the one its comment states, and a valid name is safe as a URL
// path segment and as a file name.
func FuzzValidUsername(f *testing.F) {
	for _, s := range []string{"alice", "a.b-c_d", "", "Alice", "../x", "-x", ".x", "a/b", "_x", "a@corp",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "alice\n", "jörg", "a b", "..", "x%2f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidUsername(name)
		byHand := len(name) >= 1 && len(name) <= 64 && (name[0] >= 'a' && name[0] <= 'z' || name[0] == '_')
		for i := 0; i < len(name) && byHand; i++ {
			c := name[i]
			byHand = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("_.@-", c) >= 0
		}
		if (err == nil) != byHand {
			t.Fatalf("ValidUsername(%q) = %v, but the documented rule says valid = %v", name, err, byHand)
		}
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				t.Fatalf("error does not name %q: %v", name, err)
			}
			return
		}
		if url.PathEscape(name) != name || filepath.Base(name) != name || name == "." || name == ".." {
			t.Fatalf("valid name %q is not safe in a URL path or as a file name", name)
		}
	})
}

// FuzzUnits: Size, Percent and Duration accept exactly the finite, in-range numbers their syntax
// allows, hold the value written, and what they hold written back reads the same.
func FuzzUnits(f *testing.F) {
	for _, s := range []string{"2G", "512M", "0", "1024", "1.5K", "2t", " 3G ", "-1", "lots", "", "G",
		"200%", "150", "0%", "12.5%", "%", "90s", "14d", "1.5d", "-2h", "336h", "soon", "d",
		"NaN", "inf", "-Inf", "1e30", "1e300d", "NaNd", "0x1p4", "1_000", "1e400", "18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var size Size
		if err := size.UnmarshalText([]byte(s)); err == nil {
			str := strings.ToUpper(strings.TrimSpace(s))
			mult := 1.0
			for i, suf := range []string{"K", "M", "G", "T"} {
				if num, ok := strings.CutSuffix(str, suf); ok {
					str, mult = num, math.Pow(1024, float64(i+1))
					break
				}
			}
			n, _ := strconv.ParseFloat(str, 64)
			if v := n * mult; !(v >= 0 && v < math.Pow(2, 64)) || uint64(size) != uint64(v) {
				t.Fatalf("Size %q = %d, but it is %v bytes", s, size, v)
			}
			var back Size
			if err := back.UnmarshalText([]byte(strconv.FormatUint(uint64(size), 10))); err != nil || back != size {
				t.Fatalf("Size %q = %d reads back as %d (%v)", s, size, back, err)
			}
		}

		var p Percent
		if err := p.UnmarshalText([]byte(s)); err == nil {
			if math.IsNaN(float64(p)) || math.IsInf(float64(p), 0) || p < 0 {
				t.Fatalf("Percent %q = %v", s, p)
			}
			var back Percent
			if err := back.UnmarshalText([]byte(strconv.FormatFloat(float64(p), 'g', -1, 64) + "%")); err != nil || back != p {
				t.Fatalf("Percent %q = %v reads back as %v (%v)", s, p, back, err)
			}
		}

		var d Duration
		if err := d.UnmarshalText([]byte(s)); err == nil {
			str := strings.TrimSpace(s)
			if days, ok := strings.CutSuffix(str, "d"); ok {
				n, _ := strconv.ParseFloat(days, 64)
				if v := n * float64(24*time.Hour); !(v >= math.MinInt64 && v < math.MaxInt64) || int64(d) != int64(v) {
					t.Fatalf("Duration %q = %v, but it is %v ns", s, d.D(), v)
				}
			} else if want, err := time.ParseDuration(str); err != nil || d.D() != want {
				t.Fatalf("Duration %q = %v, time.ParseDuration says %v (%v)", s, d.D(), want, err)
			}
			var back Duration
			if err := back.UnmarshalText([]byte(d.D().String())); err != nil || back != d {
				t.Fatalf("Duration %q = %v reads back as %v (%v)", s, d.D(), back.D(), err)
			}
		} else if !strings.Contains(err.Error(), "invalid duration") {
			t.Fatalf("Duration %q: %v", s, err)
		}
	})
}
