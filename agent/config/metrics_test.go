package config

import (
	"strings"
	"testing"
)

func TestMetricsArePrivateUnlessMadePublic(t *testing.T) {
	for src, public := range map[string]bool{
		"":                                    false,
		"[hub]\nmetrics_public = true":        true,
		"[hub]\nmetrics_public = false":       false,
		"[hub]\nauthenticate_metrics = true":  false,
		"[hub]\nauthenticate_metrics = false": true, // the old key keeps its meaning
	} {
		cfg := Default()
		if err := Parse([]byte(src), &cfg); err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if got := cfg.Hub.PublicMetrics(); got != public {
			t.Errorf("%q: public metrics = %v, want %v", src, got, public)
		}
	}
}

func TestTheDeprecatedMetricsKeyIsNotedWithItsReplacement(t *testing.T) {
	cfg := Default()
	if err := Parse([]byte("[hub]\nauthenticate_metrics = false"), &cfg); err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(cfg.Notes(), "\n")
	if !strings.Contains(notes, "hub.authenticate_metrics is deprecated") || !strings.Contains(notes, "hub.metrics_public = true") {
		t.Errorf("notes = %q, want the deprecation and its replacement", notes)
	}
	if d := Default(); len(d.Notes()) != 0 {
		t.Errorf("the defaults have notes: %q", d.Notes())
	}
}

func TestBothMetricsKeysAreRefused(t *testing.T) {
	cfg := Default()
	err := Parse([]byte("[hub]\nauthenticate_metrics = true\nmetrics_public = false"), &cfg)
	if err == nil || !strings.Contains(err.Error(), "hub.authenticate_metrics") || !strings.Contains(err.Error(), "remove") {
		t.Errorf("err = %v, want it to name hub.authenticate_metrics and say to remove it", err)
	}
}
