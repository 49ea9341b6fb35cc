package node_test

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

func TestAgentReapsItsCriticalService(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	start := time.Now()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "doomed", Name: "doomed", Port: 1,
		Check: &api.AgentServiceCheck{CheckID: "doomed-ttl", TTL: "1m", DeregisterCriticalServiceAfter: "2s"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "kept", Name: "kept", Port: 2,
		Check: &api.AgentServiceCheck{CheckID: "kept-ttl", TTL: "1m", Status: api.HealthPassing, DeregisterCriticalServiceAfter: "2s"}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "the critical service to be reaped", func() bool {
		cs, _, err := c.Catalog().Service("doomed", "", nil)
		return err == nil && len(cs) == 0
	})
	took := time.Since(start)
	t.Logf("reaped %v after registration (deregister_critical_service_after 2s)", took)
	if took < 2*time.Second {
		t.Fatalf("reaped after %v, before its 2s", took)
	}
	svcs, err := c.Agent().Services()
	if err != nil || svcs["doomed"] != nil || svcs["kept"] == nil {
		t.Fatalf("agent services after the reap = %v, %v", svcs, err)
	}
}

func TestLeaderReapsExternalAndFailedNodes(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	reg := func(node, svc, status string, serfHealth string) {
		t.Helper()
		checks := api.HealthChecks{{CheckID: svc + "-check", ServiceID: svc, Status: status,
			Definition: api.HealthCheckDefinition{DeregisterCriticalServiceAfterDuration: time.Second}}}
		if serfHealth != "" {
			checks = append(checks, &api.HealthCheck{CheckID: "serfHealth", Status: serfHealth})
		}
		_, err := c.Catalog().Register(&api.CatalogRegistration{Node: node, Address: "10.9.9.9",
			Service: &api.AgentService{ID: svc, Service: svc, Port: 1}, Checks: checks}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	// First, so that it would fall due before the others if the leader took it.
	reg("alive", "agent-owned", api.HealthCritical, "passing")      // a live agent reaps its own: the leader leaves it
	reg("ext", "external-critical", api.HealthCritical, "")         // no agent: the leader reaps
	reg("ext", "external-passing", api.HealthPassing, "")           // not critical: stays
	reg("crashed", "on-failed-node", api.HealthPassing, "critical") // stale passing on a failed node: reaped

	gone := func(svc string) bool {
		cs, _, err := c.Catalog().Service(svc, "", nil)
		return err == nil && len(cs) == 0
	}
	testkit.Eventually(t, 20*time.Second, "the leader to reap", func() bool {
		return gone("external-critical") && gone("on-failed-node")
	})
	// agent-owned would have fallen due first, so it would be gone by now.
	for _, svc := range []string{"external-passing", "agent-owned"} {
		if gone(svc) {
			t.Fatalf("%s was reaped", svc)
		}
	}
}
