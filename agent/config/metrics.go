package config

import (
	"errors"
	"fmt"

	"github.com/BurntSushi/toml"
)

// /hub/metrics is behind the read:metrics scope unless hub.metrics_public is true, the inverse
// of JupyterHub 5's authenticate_prometheus. hub.authenticate_metrics, its first name here, is
// still read so that a file written for it keeps its meaning; check-config and the hub's log
// say to move to the new key.

// PublicMetrics says whether anyone who reaches the hub may scrape /hub/metrics.
func (h Hub) PublicMetrics() bool {
	return h.MetricsPublic || h.AuthenticateMetrics != nil && !*h.AuthenticateMetrics
}

// checkMetricsKeys refuses a file that sets both keys: whichever won, the other would be a lie
// about what the hub does.
func checkMetricsKeys(md toml.MetaData) error {
	if md.IsDefined("hub", "authenticate_metrics") && md.IsDefined("hub", "metrics_public") {
		return errors.New("hub.authenticate_metrics: deprecated, and hub.metrics_public is set too; remove hub.authenticate_metrics")
	}
	return nil
}

// DeprecatedMetricsKey is the note for a file that still sets hub.authenticate_metrics; "" if it
// does not. The hub logs it at start and check-config prints it.
func (h Hub) DeprecatedMetricsKey() string {
	if h.AuthenticateMetrics == nil {
		return ""
	}
	return fmt.Sprintf("hub.authenticate_metrics is deprecated: replace it with hub.metrics_public = %v (its inverse)", !*h.AuthenticateMetrics)
}

func (h Hub) metricsNotes() []string {
	if n := h.DeprecatedMetricsKey(); n != "" {
		return []string{n}
	}
	return nil
}
