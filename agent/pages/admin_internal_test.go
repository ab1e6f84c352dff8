package pages

import (
	"encoding/json"
	"testing"
	"time"
)

func TestShortDurationsReadAtAGlance(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                   "0 s",
		45 * time.Second:               "45 s",
		90 * time.Second:               "1 min 30 s",
		2 * time.Minute:                "2 min",
		42*time.Minute + 5*time.Second: "42 min",
		3*time.Hour + 5*time.Minute:    "3 h 5 min",
		50 * time.Hour:                 "2 d 2 h",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestSizesReadAsSystemctlShowsThem(t *testing.T) {
	for n, want := range map[uint64]string{4096: "4 KiB", 700 << 20: "700 MiB", 1536 << 20: "1.5 GiB"} {
		if got := bytesIEC(n); got != want {
			t.Errorf("bytesIEC(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTheProfileComesFromUserOptions(t *testing.T) {
	for raw, want := range map[string]string{`{"profile": "pytorch", "gpus": 1}`: "pytorch", `{}`: "", ``: "", `{"profile": null}`: "", `[1]`: ""} {
		if got := profileOf(json.RawMessage(raw)); got != want {
			t.Errorf("profileOf(%s) = %q, want %q", raw, got, want)
		}
	}
}
