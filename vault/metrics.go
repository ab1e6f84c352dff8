package vault

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	stateDesc = prometheus.NewDesc("jupyterhub_vault_admin_token_state",
		"1 for the state the hub's Vault admin token was in at its last check (ok, expiring, dead, unreachable), 0 for the others.",
		[]string{"state"}, nil)
	ttlDesc = prometheus.NewDesc("jupyterhub_vault_admin_token_ttl_seconds",
		"Seconds until the hub's Vault admin token expires, as of its last check; absent for a token that never expires.",
		nil, nil)
	pendingDesc = prometheus.NewDesc("jupyterhub_vault_revocations_pending",
		"Stopped servers' Vault tokens whose revocation failed and is being tried again.",
		nil, nil)
)

// Collector is the admin token's state for the hub's /hub/metrics.
func (v *Vault) Collector() prometheus.Collector { return collector{v} }

type collector struct{ v *Vault }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stateDesc
	ch <- ttlDesc
	ch <- pendingDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	state, expires := c.v.State()
	for _, s := range states {
		val := 0.0
		if s == state {
			val = 1
		}
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, val, s)
	}
	if !expires.IsZero() && (state == StateOK || state == StateExpiring) {
		ch <- prometheus.MustNewConstMetric(ttlDesc, prometheus.GaugeValue, max(0, time.Until(expires).Seconds()))
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(c.v.Pending()))
}
