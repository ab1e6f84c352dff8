package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
)

// ExamplePath is where the packages install the documented example configuration.
const ExamplePath = "/usr/share/doc/jupyterhub-go/config.example.toml"

// Problem is one thing wrong with a configuration file, located where the file says it.
type Problem struct {
	Line    int    // 0: the key is not in the file (its default, or a combination, is wrong)
	Key     string // e.g. "spawner.memory_max"; "" when the file does not parse
	Message string // what is wrong and how to fix it
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Check reads the file at path over the defaults and the environment's overrides, as Load does,
// and returns the configuration
// with every problem it finds at once: unknown keys (with the key probably meant), then the
// values Validate refuses, each with the line it is on. A missing file is a problem only if
// mustExist.
func Check(path string, mustExist bool) (Config, []Problem) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !mustExist {
		cfg.ApplyEnv(os.LookupEnv)
		return cfg, problemsOf(cfg.Validate(), nil)
	}
	if err != nil {
		return cfg, []Problem{{Message: fmt.Sprintf("cannot read the file: %v", err)}}
	}
	lines := keyLines(data)
	// A value the decoder refuses stops it at that line: note it, blank the line and read the
	// file again, so the problems after it are found in the same run.
	var out []Problem
	for range 50 {
		cfg = Default()
		err = Parse(data, &cfg)
		var le *lineError
		if !errors.As(err, &le) {
			break
		}
		out = append(out, Problem{Line: le.Position.Line, Key: le.LastKey, Message: le.Message})
		if !blankLine(data, le.Position.Line) {
			return cfg, out
		}
	}
	if err != nil {
		var uk *unknownKeys
		if !errors.As(err, &uk) {
			return cfg, append(out, Problem{Message: err.Error()})
		}
		for _, k := range uk.keys {
			msg := "not a configuration key"
			if m := didYouMean(k); m != "" {
				msg += "; did you mean " + m + "?"
			} else {
				msg += "; the documented keys are in " + ExamplePath
			}
			out = append(out, Problem{Line: lines[k], Key: k, Message: msg})
		}
	}
	// The rest of the file was read: its values are checked too (a blanked line keeps its
	// default), with the environment's overrides applied as Load applies them.
	cfg.ApplyEnv(os.LookupEnv)
	all := append(out, problemsOf(cfg.Validate(), lines)...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Line > 0 && (all[j].Line == 0 || all[i].Line < all[j].Line) })
	return cfg, all
}

// blankLine empties line n (1-based) of data in place, keeping the line count; false if there is
// no such line or it is empty already.
func blankLine(data []byte, n int) bool {
	line := 1
	for i := range data {
		if line == n && data[i] != '\n' {
			if data[i] == ' ' {
				continue
			}
			for j := i; j < len(data) && data[j] != '\n'; j++ {
				data[j] = ' '
			}
			return true
		}
		if data[i] == '\n' {
			line++
			if line > n {
				return false
			}
		}
	}
	return false
}

// problemsOf splits what Validate says (one "key: message" per line) into problems with lines.
func problemsOf(err error, lines map[string]int) []Problem {
	if err == nil {
		return nil
	}
	var out []Problem
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		key, msg, ok := strings.Cut(l, ": ")
		if !ok || strings.ContainsAny(key, " \"") {
			out = append(out, Problem{Message: l})
			continue
		}
		out = append(out, Problem{Line: lines[key], Key: key, Message: msg})
	}
	return out
}

// keyLines maps each dotted key the file sets to the line it is set on: a small reader for
// [table] headers and key = value lines, enough to point at a key. (The TOML library knows the
// keys but not where they are.)
func keyLines(data []byte) map[string]int {
	out := map[string]int{}
	table := ""
	// element is "profile[2]" inside the third [[profile]], for Validate's profile[N].key.
	element, elements := "", map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "[") {
			table = strings.Trim(strings.SplitN(l, "]", 2)[0], "[ ")
			table = strings.ReplaceAll(table, `"`, "")
			if _, seen := out[table]; !seen {
				out[table] = n
			}
			element = ""
			if strings.HasPrefix(l, "[[") {
				element = fmt.Sprintf("%s[%d]", table, elements[table])
				elements[table]++
				out[element] = n
			}
			continue
		}
		key, _, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		key = strings.ReplaceAll(strings.TrimSpace(key), `"`, "")
		if table != "" {
			key = table + "." + key
		}
		if _, seen := out[key]; !seen {
			out[key] = n
		}
		if element != "" {
			out[element+key[len(table):]] = n
		}
	}
	return out
}

// knownKeys lists every documented key, dotted.
func knownKeys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			ft := t.Field(i).Type
			for ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.Name() != "Duration" {
				walk(ft, prefix+name+".")
				continue
			}
			out = append(out, prefix+name)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// didYouMean is the documented key closest to k, if one is close: a typo, a key in the wrong
// table, or dashes for underscores.
func didYouMean(k string) string {
	best, bestD := "", 4
	last := k[strings.LastIndex(k, ".")+1:]
	for _, known := range knownKeys() {
		d := editDistance(strings.ToLower(strings.ReplaceAll(k, "-", "_")), known)
		if kl := known[strings.LastIndex(known, ".")+1:]; kl == strings.ReplaceAll(last, "-", "_") && d > 1 {
			d = 1 // the right name in the wrong table
		}
		if d < bestD {
			best, bestD = known, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
