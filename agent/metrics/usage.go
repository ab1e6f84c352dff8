package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ServerUsage is what one running server uses, as its unit's cgroup counts it.
type ServerUsage struct {
	User, Server string
	MemoryBytes  uint64  // memory.current
	CPUSeconds   float64 // cpu.stat usage_usec, in seconds: a counter
}

var (
	memoryDesc = prometheus.NewDesc("jupyterhub_server_memory_bytes", "Memory a user server's unit uses now (its cgroup's memory.current)", []string{"user", "server"}, nil)
	cpuDesc    = prometheus.NewDesc("jupyterhub_server_cpu_seconds_total", "CPU time a user server's unit has used (its cgroup's cpu.stat usage)", []string{"user", "server"}, nil)
)

// usageCollector exports the servers' usage read by the last refresh: only servers that run
// have series, so a stopped server's disappear instead of going stale.
type usageCollector struct {
	mu   sync.Mutex
	last []ServerUsage
}

func (c *usageCollector) set(u []ServerUsage) {
	c.mu.Lock()
	c.last = u
	c.mu.Unlock()
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- memoryDesc
	ch <- cpuDesc
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	last := c.last
	c.mu.Unlock()
	for _, u := range last {
		ch <- constMetric(memoryDesc, prometheus.GaugeValue, float64(u.MemoryBytes), u)
		ch <- constMetric(cpuDesc, prometheus.CounterValue, u.CPUSeconds, u)
	}
}

// constMetric is the sample, or an invalid metric that fails the scrape's gathering of this one
// series (with ContinueOnError, the rest are served) where the Must form would panic.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, u ServerUsage) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, u.User, u.Server)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
