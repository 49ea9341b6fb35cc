package node_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

// metricValue is the value of the first sample of metrics whose line
// matches pattern (the labels in Prometheus's sorted order), or -1.
func metricValue(t *testing.T, metrics, pattern string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + pattern + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", pattern, err)
	}
	return v
}

// TestAgentMetrics: HTTP latency by route (blocking apart), DNS queries
// by type and rcode, gossip members by status and the catalog's sizes
// are in the Prometheus output.
func TestAgentMetrics(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	if code, body := do(t, "PUT", a.HTTP+"/v1/agent/service/register",
		`{"Name":"web","ID":"web1","Port":80,"Check":{"CheckID":"web-ttl","TTL":"30s"}}`); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, body := do(t, "PUT", a.HTTP+"/v1/agent/check/pass/web-ttl", ""); code != 200 {
		t.Fatalf("pass: %d %s", code, body)
	}
	for range 3 {
		if code, body := do(t, "GET", a.HTTP+"/v1/health/service/web", ""); code != 200 {
			t.Fatalf("health: %d %s", code, body)
		}
	}
	if code, _ := do(t, "GET", a.HTTP+"/v1/catalog/services?index=1&wait=10ms", ""); code != 200 {
		t.Fatalf("blocking catalog/services: %d", code)
	}
	if code, _ := do(t, "GET", a.HTTP+"/v1/agent/service/nope", ""); code != 404 {
		t.Fatalf("unknown service: %d", code)
	}
	probed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer probed.Close()
	if code, body := do(t, "PUT", a.HTTP+"/v1/agent/check/register",
		`{"Name":"probe","CheckID":"probe","HTTP":"`+probed.URL+`","Interval":"1s"}`); code != 200 {
		t.Fatalf("register check: %d %s", code, body)
	}
	testkit.Eventually(t, 10*time.Second, "the HTTP check run twice and passing", func() bool {
		m := metricsText(t, a)
		return metricValue(t, m, `meshd_check_runs_total\{result="passing",type="http"\}`) >= 2 &&
			metricValue(t, m, `meshd_check_transitions_total\{status="passing",type="http"\}`) == 1
	})
	query(t, a.DNS, "web.service.consul", mdns.TypeSRV, "udp")
	query(t, a.DNS, "web.service.consul", mdns.TypeSRV, "tcp")
	query(t, a.DNS, "nope.service.consul", mdns.TypeA, "udp")

	m := metricsText(t, a)
	for pattern, want := range map[string]float64{
		`meshd_http_request_duration_seconds_count\{blocking="false",code="200",method="GET",route="/v1/health/service/\{name\.\.\.\}"\}`: 3,
		`meshd_http_request_duration_seconds_count\{blocking="true",code="200",method="GET",route="/v1/catalog/services"\}`:               1,
		`meshd_http_request_duration_seconds_count\{blocking="false",code="404",method="GET",route="/v1/agent/service/\{id\.\.\.\}"\}`:    1,
		`meshd_dns_request_duration_seconds_count\{rcode="NOERROR",type="SRV"\}`:                                                          2,
		`meshd_dns_request_duration_seconds_count\{rcode="NXDOMAIN",type="A"\}`:                                                           1,
		`meshd_gossip_members\{pool="lan",status="alive"\}`:                                                                               1,
		`meshd_catalog_service_instances`:                              1,
		`meshd_catalog_services`:                                       1,
		`meshd_check_transitions_total\{status="passing",type="ttl"\}`: 1,
		`meshd_raft_apply_duration_seconds_count\{type="register"\}`:   -2,
		`meshd_fsm_apply_duration_seconds_count\{type="register"\}`:    -2,
		`meshd_raft_log_write_entries_count`:                           -2,
		`meshd_raft_log_write_entries_sum`:                             -2,
		`meshd_raft_log_write_duration_seconds_count`:                  -2,
		`meshd_catalog_nodes`:                                          1,
		`meshd_catalog_checks\{status="passing"\}`:                     3, // serfHealth, the TTL and HTTP checks
		`meshd_catalog_checks\{status="critical"\}`:                    0,
	} {
		got := metricValue(t, m, pattern)
		if want == -2 { // at least one
			if got < 1 {
				t.Errorf("%s = %v, want at least 1", pattern, got)
			}
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", pattern, got, want)
		}
	}
	if t.Failed() {
		t.Log(m)
	}
}
