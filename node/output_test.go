package node_test

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/nodetest"
)

// An output-only change is written at most once per check_update_interval;
// a status change is written at once.
func TestOutputOnlyChangesAreRateLimited(t *testing.T) {
	interval := 2 * time.Second
	a := nodetest.Start(t, nodetest.Options{Edit: func(f *config.File) { f.CheckUpdateInterval = &interval }})
	c := newClient(t, a)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", Port: 80,
		Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "1m"}}); err != nil {
		t.Fatal(err)
	}
	catalogOutput := func() (string, string, uint64) {
		checks, meta, err := c.Health().Checks("web", nil)
		if err != nil || len(checks) != 1 {
			t.Fatalf("health checks = %v, %v", checks, err)
		}
		return checks[0].Status, checks[0].Output, meta.LastIndex
	}
	if err := c.Agent().PassTTL("web-ttl", "run 1"); err != nil {
		t.Fatal(err)
	}
	status, out, idx := catalogOutput()
	if status != api.HealthPassing || out != "run 1" {
		t.Fatalf("status change not written at once: %s %q", status, out)
	}

	start := time.Now()
	if err := c.Agent().PassTTL("web-ttl", "run 2"); err != nil {
		t.Fatal(err)
	}
	local, err := c.Agent().Checks()
	if err != nil || local["web-ttl"].Output != "run 2" {
		t.Fatalf("agent view = %+v, %v", local["web-ttl"], err)
	}
	if _, out, idx2 := catalogOutput(); out != "run 1" || idx2 != idx {
		t.Fatalf("output-only change written at once: %q, index %d -> %d", out, idx, idx2)
	}
	testkit.Eventually(t, 10*interval, "the held-back output to reach the catalog", func() bool {
		_, out, _ := catalogOutput()
		return out == "run 2"
	})
	took := time.Since(start)
	t.Logf("held-back output written after %v (check_update_interval %v)", took, interval)
	if took < interval/2 {
		t.Fatalf("held-back output written after %v, well before the interval %v", took, interval)
	}

	// A status change still goes at once, output included.
	if err := c.Agent().FailTTL("web-ttl", "run 3"); err != nil {
		t.Fatal(err)
	}
	if status, out, _ := catalogOutput(); status != api.HealthCritical || out != "run 3" {
		t.Fatalf("status change = %s %q", status, out)
	}
}
