package node_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
	mdns "github.com/miekg/dns"
)

// A failing HTTP check with interval=1s takes the instance out of
// health/service?passing and DNS within 3 s, and brings it back within 3 s
// of recovery.
func TestHTTPCheckFailureLeavesAndReturns(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer app.Close()

	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080,
		Check: &api.AgentServiceCheck{CheckID: "web-http", HTTP: app.URL + "/health", Interval: "1s", Timeout: "1s"}})
	if err != nil {
		t.Fatal(err)
	}
	inAnswers := func() (bool, bool) {
		entries, _, err := c.Health().Service("web", "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := query(t, a.DNS, "web.service.consul", mdns.TypeA, "udp")
		return len(entries) == 1, len(r.Answer) == 1
	}
	testkit.Eventually(t, 10*time.Second, "the first passing run", func() bool {
		h, d := inAnswers()
		return h && d
	})

	measure := func(what string, want bool) {
		t.Helper()
		start := time.Now()
		var httpAt, dnsAt time.Duration
		testkit.Eventually(t, 15*time.Second, what, func() bool {
			h, d := inAnswers()
			if h == want && httpAt == 0 {
				httpAt = time.Since(start)
			}
			if d == want && dnsAt == 0 {
				dnsAt = time.Since(start)
			}
			return httpAt > 0 && dnsAt > 0
		})
		t.Logf("%s: health/service after %v, DNS after %v", what, httpAt, dnsAt)
		if httpAt > 3*time.Second || dnsAt > 3*time.Second {
			t.Fatalf("%s took %v (HTTP) / %v (DNS), more than 3s", what, httpAt, dnsAt)
		}
	}
	healthy.Store(false)
	measure("leaving the answers", false)
	healthy.Store(true)
	measure("returning to the answers", true)
}
