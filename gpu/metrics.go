package gpu

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the allocator's devices to Prometheus. Like node_exporter's collectors it
// keeps nothing itself: every scrape reads NVML and the grants afresh, so what a scrape shows
// is what holds at that moment.
//
//	jupyterhub_gpu_info{uuid,index,profile,name,parent_uuid}          1 per device that can be granted
//	jupyterhub_gpu_memory_used_bytes{uuid,index,profile}
//	jupyterhub_gpu_memory_total_bytes{uuid,index,profile}
//	jupyterhub_gpu_utilization_ratio{uuid,index,profile}              0-1; 0 for MIG devices (NVML has none)
//	jupyterhub_gpu_allocated{uuid,index,profile,user,server}          1 while held (user and server say by whom), 0 when free
//	jupyterhub_gpu_queue_length{profile}                              spawns waiting in line ("" = whole GPUs)
//
// index is the GPU's NVML index (a MIG device's parent's); profile is "" for a whole GPU.
type Collector struct {
	alloc   *Allocator
	timeout time.Duration

	info, memUsed, memTotal, util, allocated, queue *prometheus.Desc
}

// NewCollector makes the collector; register it with the hub's registry.
func NewCollector(alloc *Allocator) *Collector {
	dev := []string{"uuid", "index", "profile"}
	return &Collector{
		alloc:   alloc,
		timeout: 10 * time.Second,
		info: prometheus.NewDesc("jupyterhub_gpu_info",
			"A GPU or MIG device the hub can grant to servers (always 1).",
			append(dev[:3:3], "name", "parent_uuid"), nil),
		memUsed: prometheus.NewDesc("jupyterhub_gpu_memory_used_bytes",
			"Device memory in use, as NVML reports it.", dev, nil),
		memTotal: prometheus.NewDesc("jupyterhub_gpu_memory_total_bytes",
			"Device memory in all.", dev, nil),
		util: prometheus.NewDesc("jupyterhub_gpu_utilization_ratio",
			"Share of NVML's last sample period the GPU was busy (0 for MIG devices, which NVML does not sample).", dev, nil),
		allocated: prometheus.NewDesc("jupyterhub_gpu_allocated",
			"1 while a server holds the device (user and server name it; server is \"\" for a user's default server), 0 while free.",
			append(dev[:3:3], "user", "server"), nil),
		queue: prometheus.NewDesc("jupyterhub_gpu_queue_length",
			"Spawns waiting in line for a device, by MIG profile (\"\" for whole GPUs).", []string{"profile"}, nil),
	}
}

// Describe sends the descriptions of every metric the collector makes.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.memUsed, c.memTotal, c.util, c.allocated, c.queue} {
		ch <- d
	}
}

// Collect reads the devices now. Prometheus gives a collector no context, so the read has its
// own deadline; a scrape that runs out of it reports an error for the devices it did not reach.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	usage, err := c.alloc.Usage(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.memUsed, err)
	}
	for _, u := range usage {
		d := u.Device
		labels := []string{d.UUID, strconv.Itoa(d.GPU), d.Profile}
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, append(labels, d.Name, d.ParentUUID)...)
		ch <- prometheus.MustNewConstMetric(c.memUsed, prometheus.GaugeValue, float64(u.MemoryUsedBytes), labels...)
		ch <- prometheus.MustNewConstMetric(c.memTotal, prometheus.GaugeValue, float64(u.MemoryTotal()), labels...)
		ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, float64(u.UtilizationPercent)/100, labels...)
		held, user, server := 0.0, "", ""
		if u.Holder != nil {
			held, user, server = 1, u.Holder.User, u.Holder.Server
		}
		ch <- prometheus.MustNewConstMetric(c.allocated, prometheus.GaugeValue, held, append(labels, user, server)...)
	}
	// Every line that can exist is reported, waited in or not, so a dashboard sees 0 rather
	// than no data.
	waiting := c.alloc.Waiting()
	lines := map[string]int{"": waiting[""]}
	for _, p := range c.alloc.Inventory().Profiles() {
		lines[p] = waiting[p]
	}
	for p, n := range waiting {
		lines[p] = n
	}
	for p, n := range lines {
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(n), p)
	}
}
