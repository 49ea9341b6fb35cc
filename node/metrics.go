package node

import (
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/gossip"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// agentMetrics are an agent's Prometheus metrics, in a registry of its
// own (several agents share a test process).
type agentMetrics struct {
	reg *prometheus.Registry

	// On client agents: lookups answered from the cache, and misses.
	cacheHits, cacheMisses prometheus.Counter

	// DNS queries by type and rcode; their count is the query rate. (The
	// HTTP API registers its own request histogram.)
	dnsDuration *prometheus.HistogramVec

	// Checks run, by type and raw result; status changes, by type.
	checkRuns, checkTransitions *prometheus.CounterVec

	// On servers: Raft writes from submit to applied (their count is the
	// commit rate), and FSM application, by command type.
	raftApply, fsmApply *prometheus.HistogramVec
	// On servers: writes to the Raft log (one fsync each), by entries
	// written together and by time taken.
	logWriteEntries, logWriteDuration prometheus.Histogram
	// On servers: copies of writes applied before, which the FSM turned
	// into no-ops (counted by the leader that committed them), and
	// whether the FSM halted at an entry it cannot apply.
	duplicateWrites *prometheus.CounterVec
	fsmHalted       prometheus.Gauge
}

// latencyBuckets span 50 µs to about 13 s, by factors of 4.
var latencyBuckets = prometheus.ExponentialBuckets(0.00005, 4, 10)

func newAgentMetrics() *agentMetrics {
	m := &agentMetrics{
		reg: prometheus.NewRegistry(),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_cache_hits_total", Help: "Lookups the agent cache answered from memory.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_cache_misses_total", Help: "Lookups that started a cache entry (one query to the servers).",
		}),
		dnsDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meshd_dns_request_duration_seconds", Help: "DNS queries answered, by question type and rcode.",
			Buckets: latencyBuckets,
		}, []string{"type", "rcode"}),
		checkRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_check_runs_total", Help: "Probes the agent's active checks ran, by type and raw result (before thresholds).",
		}, []string{"type", "result"}),
		checkTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_check_transitions_total", Help: "Status changes of the agent's checks, by type and new status.",
		}, []string{"type", "status"}),
	}
	m.raftApply = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "meshd_raft_apply_duration_seconds", Help: "Writes this server applied as leader, from submit to commit and application, by command type.",
		Buckets: latencyBuckets,
	}, []string{"type"})
	m.fsmApply = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "meshd_fsm_apply_duration_seconds", Help: "Commands this server's FSM applied, by command type.",
		Buckets: latencyBuckets,
	}, []string{"type"})
	m.logWriteEntries = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "meshd_raft_log_write_entries", Help: "Entries in each write to this server's Raft log (one fsync): the batch size achieved.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 to 512
	})
	m.logWriteDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "meshd_raft_log_write_duration_seconds", Help: "Time each write to this server's Raft log took, fsync included.",
		Buckets: latencyBuckets,
	})
	m.duplicateWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshd_raft_duplicate_writes_total", Help: "Writes this server committed as leader that were copies of writes applied before (a retry, a re-sent forward): no-ops, by command type.",
	}, []string{"type"})
	m.fsmHalted = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshd_raft_fsm_halted", Help: "1 when this server's catalog stopped at a committed log entry it cannot apply (see its log); it then serves no reads.",
	})
	m.reg.MustRegister(m.cacheHits, m.cacheMisses,
		m.dnsDuration, m.checkRuns, m.checkTransitions, m.raftApply, m.fsmApply,
		m.logWriteEntries, m.logWriteDuration, m.duplicateWrites, m.fsmHalted, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// lookup counts a cache lookup as a hit or a miss; m may be nil.
func (m *agentMetrics) lookup(hit bool) {
	switch {
	case m == nil:
	case hit:
		m.cacheHits.Inc()
	default:
		m.cacheMisses.Inc()
	}
}

// observeDNS records one DNS answer; it is dns.Config.Observe.
func (m *agentMetrics) observeDNS(qtype uint16, rcode int, took time.Duration) {
	t, ok := mdns.TypeToString[qtype]
	if !ok {
		t = "other" // the label set stays bounded whatever the network sends
	}
	r, ok := mdns.RcodeToString[rcode]
	if !ok {
		r = "other"
	}
	m.dnsDuration.WithLabelValues(t, r).Observe(took.Seconds())
}

// sizes reports, at each scrape, the gossip pools' members by status and,
// on a server, the catalog's sizes. Reading them at scrape time costs
// nothing on the paths that change them; the catalog walk is O(size).
type sizes struct{ a *Agent }

var (
	membersDesc   = prometheus.NewDesc("meshd_gossip_members", "Members of a gossip pool (lan, or wan on servers), by status.", []string{"pool", "status"}, nil)
	nodesDesc     = prometheus.NewDesc("meshd_catalog_nodes", "Nodes in this server's catalog.", nil, nil)
	servicesDesc  = prometheus.NewDesc("meshd_catalog_services", "Distinct service names in this server's catalog.", nil, nil)
	instancesDesc = prometheus.NewDesc("meshd_catalog_service_instances", "Service instances in this server's catalog.", nil, nil)
	checksDesc    = prometheus.NewDesc("meshd_catalog_checks", "Checks in this server's catalog, by status.", []string{"status"}, nil)
)

func (s sizes) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{membersDesc, nodesDesc, servicesDesc, instancesDesc, checksDesc} {
		ch <- d
	}
}

func (s sizes) Collect(ch chan<- prometheus.Metric) {
	members := func(pool string, ms []gossip.Member) {
		counts := map[gossip.MemberStatus]int{}
		for _, m := range ms {
			counts[m.Status]++
		}
		for status, n := range counts {
			ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), pool, string(status))
		}
	}
	members("lan", s.a.gossip.Members())
	if s.a.server != nil && s.a.server.wan != nil {
		members("wan", s.a.server.wan.Members())
	}
	if s.a.server == nil || s.a.server.raft == nil {
		return
	}
	st, err := s.a.server.store.Stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(nodesDesc, err) // the scrape reports it
		return
	}
	ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(st.Nodes))
	ch <- prometheus.MustNewConstMetric(servicesDesc, prometheus.GaugeValue, float64(st.Services))
	ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(st.Instances))
	for _, status := range []catalog.HealthStatus{catalog.HealthPassing, catalog.HealthWarning, catalog.HealthCritical} {
		ch <- prometheus.MustNewConstMetric(checksDesc, prometheus.GaugeValue, float64(st.Checks[status]), status)
	}
}

// observeCheck is checks.Config.Observe.
func (m *agentMetrics) observeCheck(kind, status string, changed bool) {
	if changed {
		m.checkTransitions.WithLabelValues(kind, status).Inc()
		return
	}
	m.checkRuns.WithLabelValues(kind, status).Inc()
}

func (m *agentMetrics) observeRaftApply(t consensus.MessageType, took time.Duration) {
	m.raftApply.WithLabelValues(t.String()).Observe(took.Seconds())
}

func (m *agentMetrics) observeFSM(t consensus.MessageType, took time.Duration) {
	m.fsmApply.WithLabelValues(t.String()).Observe(took.Seconds())
}

func (m *agentMetrics) observeLogWrite(entries int, took time.Duration) {
	m.logWriteEntries.Observe(float64(entries))
	m.logWriteDuration.Observe(took.Seconds())
}

// observeDuplicate counts a write the FSM found applied before.
func (m *agentMetrics) observeDuplicate(t consensus.MessageType) {
	m.duplicateWrites.WithLabelValues(t.String()).Inc()
}

// observeHalt records that the FSM halted; it is consensus.Config.OnHalt.
func (m *agentMetrics) observeHalt(error) { m.fsmHalted.Set(1) }
