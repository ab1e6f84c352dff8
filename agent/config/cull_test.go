package config

import (
	"strings"
	"testing"
	"time"
)

func TestCullMaxAgeComesFromTheSeedsEnvironmentInSeconds(t *testing.T) {
	cfg := Default()
	cfg.ApplyEnv(func(k string) (string, bool) {
		if k == EnvCullMaxAge {
			return "518400", true // the seeds' 6 days
		}
		return "", false
	})
	if cfg.Cull.MaxAge.D() != 6*24*time.Hour {
		t.Errorf("max_age = %s, want 144h", cfg.Cull.MaxAge.D())
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestCullMaxAgeFromTheEnvironmentThatIsNotSecondsIsRefusedByName(t *testing.T) {
	cfg := Default()
	cfg.ApplyEnv(func(k string) (string, bool) { return "6d", k == EnvCullMaxAge })
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "cull.max_age") || !strings.Contains(err.Error(), EnvCullMaxAge) {
		t.Errorf("err = %v, want one naming cull.max_age and %s", err, EnvCullMaxAge)
	}
}

func TestCullSettingsThatCannotWorkAreRefusedWithTheirKey(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(*Cull)
		key  string
	}{
		"no timeout":       {func(c *Cull) { c.Timeout = 0 }, "cull.timeout"},
		"no interval":      {func(c *Cull) { c.Every = 0 }, "cull.every"},
		"looks too seldom": {func(c *Cull) { c.Every = Duration(2 * time.Hour) }, "cull.every"},
		"no concurrency":   {func(c *Cull) { c.Concurrency = 0 }, "cull.concurrency"},
		"negative max age": {func(c *Cull) { c.MaxAge = -1 }, "cull.max_age"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Default()
			c.edit(&cfg.Cull)
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), c.key+": ") {
				t.Errorf("err = %v, want one for %s", err, c.key)
			}
		})
	}
	cfg := Default()
	cfg.Cull = Cull{} // off: its other keys do not matter
	if err := cfg.Validate(); err != nil {
		t.Errorf("a culler that is off: %v", err)
	}
}

func TestCullMaxAgeMustEndBeforeTheVaultTokenDoes(t *testing.T) {
	week := 7 * 24 * time.Hour
	for name, c := range map[string]struct {
		cull   Cull
		vault  bool
		refuse bool
	}{
		"below":          {Cull{Enabled: true, MaxAge: Duration(6 * 24 * time.Hour)}, true, false},
		"equal":          {Cull{Enabled: true, MaxAge: Duration(week)}, true, true},
		"above":          {Cull{Enabled: true, MaxAge: Duration(8 * 24 * time.Hour)}, true, true},
		"no max age":     {Cull{Enabled: true}, true, false}, // a note instead: see below
		"culler off":     {Cull{MaxAge: Duration(30 * 24 * time.Hour)}, true, false},
		"vault disabled": {Cull{Enabled: true, MaxAge: Duration(30 * 24 * time.Hour)}, false, false},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			c.cull.checkAgainstTokenMaxTTL(c.vault, week, func(key, format string, args ...any) { got = append(got, key) })
			if (len(got) > 0) != c.refuse || (c.refuse && got[0] != "cull.max_age") {
				t.Errorf("problems = %v, refuse = %v", got, c.refuse)
			}
		})
	}
}

// With no age limit at all a server can outlive its Vault token; that is said, not refused.
func TestServersWithoutAnAgeLimitGetANoteWhenVaultIsOn(t *testing.T) {
	cfg := Default()
	cfg.Vault.Enabled = true
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "cull.max_age") {
		t.Fatalf("refused: %v", err)
	}
	notes := strings.Join(cfg.Notes(), "\n")
	if !strings.Contains(notes, "cull.max_age") || !strings.Contains(notes, "vault.max_ttl") {
		t.Errorf("notes = %q, want one on cull.max_age and vault.max_ttl", notes)
	}
	cfg.Cull.MaxAge = Duration(6 * 24 * time.Hour)
	if notes := strings.Join(cfg.Notes(), "\n"); strings.Contains(notes, "cull.max_age") {
		t.Errorf("a max age below the token's still gets a note: %q", notes)
	}
}
