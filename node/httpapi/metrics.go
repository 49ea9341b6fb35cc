package httpapi

import (
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// agentMetrics answers GET /v1/agent/metrics: the Prometheus text
// format with ?format=prometheus (what Prometheus scrapes), else Consul's
// JSON shape (Gauges, Counters, Samples) as its clients read it.
func (h *API) agentMetrics(w http.ResponseWriter, r *http.Request) (any, error) {
	if r.URL.Query().Get("format") == "prometheus" {
		h.scrape.ServeHTTP(w, r)
		return nil, nil
	}
	families, err := h.metrics.Gather()
	if err != nil {
		return nil, err
	}
	return metricsSummary(families, time.Now()), nil
}

// metricsJSON is Consul's agent/metrics answer.
type metricsJSON struct {
	Timestamp string
	Gauges    []gaugeJSON
	Points    []struct{}
	Counters  []counterJSON
	Samples   []struct{}
}

type gaugeJSON struct {
	Name   string
	Value  float64
	Labels map[string]string
}

type counterJSON struct {
	Name   string
	Count  int
	Sum    float64
	Labels map[string]string
}

func metricsSummary(families []*dto.MetricFamily, now time.Time) *metricsJSON {
	out := &metricsJSON{
		Timestamp: now.UTC().Format("2006-01-02 15:04:05 -0700 MST"),
		Gauges:    []gaugeJSON{}, Points: []struct{}{}, Counters: []counterJSON{}, Samples: []struct{}{},
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v := m.GetCounter().GetValue()
				out.Counters = append(out.Counters, counterJSON{Name: f.GetName(), Count: int(v), Sum: v, Labels: labels})
			case dto.MetricType_GAUGE:
				out.Gauges = append(out.Gauges, gaugeJSON{Name: f.GetName(), Value: m.GetGauge().GetValue(), Labels: labels})
			}
		}
	}
	return out
}
