package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

// lbPick asks /v1/lb/service for one instance and returns the status and
// the instance's service ID.
func lbPick(t *testing.T, a *nodetest.Agent, query string) (int, string) {
	t.Helper()
	code, body := do(t, "GET", a.HTTP+"/v1/lb/service/"+query, "")
	if code != http.StatusOK {
		return code, body
	}
	var entry api.ServiceEntry
	if err := json.Unmarshal([]byte(body), &entry); err != nil {
		t.Fatalf("lb answer %q: %v", body, err)
	}
	if entry.Service == nil || entry.Node == nil {
		t.Fatalf("lb answer without node or service: %s", body)
	}
	return code, entry.Service.ID
}

// TestLBService drives the server-side balancing endpoint through a real
// agent: every policy hands out only healthy instances, round robin visits
// them all, weights steer the weighted policy, and bad or empty asks get
// clear errors.
func TestLBService(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	for i, w := range []int{1, 1, 8} {
		reg := &api.AgentServiceRegistration{
			ID: fmt.Sprintf("web-%d", i), Name: "web", Port: 8080 + i, Tags: []string{"v1"},
			Weights: &api.AgentWeights{Passing: w, Warning: 1},
		}
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	// A critical instance is never handed out.
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-bad", Name: "web", Port: 9000, Tags: []string{"v1"},
		Check: &api.AgentServiceCheck{CheckID: "bad", TTL: "1h", Status: api.HealthCritical},
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "down", Name: "down", Port: 1,
		Check: &api.AgentServiceCheck{CheckID: "down", TTL: "1h", Status: api.HealthCritical},
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("round robin visits every healthy instance", func(t *testing.T) {
		seen := map[string]int{}
		for range 6 {
			code, id := lbPick(t, a, "web?policy=round_robin")
			if code != 200 {
				t.Fatalf("status %d: %s", code, id)
			}
			seen[id]++
		}
		if len(seen) != 3 || seen["web-0"] != 2 || seen["web-1"] != 2 || seen["web-2"] != 2 {
			t.Fatalf("round robin handed out %v, want web-0..2 twice each", seen)
		}
	})
	t.Run("least recent walks the set", func(t *testing.T) {
		seen := map[string]int{}
		for range 3 {
			_, id := lbPick(t, a, "web?policy=least_recent&tag=v1")
			seen[id]++
		}
		if len(seen) != 3 {
			t.Fatalf("least recent handed out %v, want each once", seen)
		}
	})
	t.Run("weighted follows weights", func(t *testing.T) {
		// Weights 1:1:8; 200 picks. web-2's expected share is 160, with a
		// standard deviation under 6: below 120 is far out of chance.
		seen := map[string]int{}
		for range 200 {
			code, id := lbPick(t, a, "web")
			if code != 200 {
				t.Fatalf("status %d: %s", code, id)
			}
			seen[id]++
		}
		t.Logf("weighted picks: %v", seen)
		if seen["web-bad"] != 0 || seen["web-2"] < 120 {
			t.Fatalf("weighted handed out %v", seen)
		}
	})
	t.Run("nearest", func(t *testing.T) {
		// A single agent has only its own coordinate: every instance is on
		// this node, so any healthy one will do.
		code, id := lbPick(t, a, "web?policy=nearest&near=_agent")
		if code != 200 || id == "web-bad" {
			t.Fatalf("nearest: %d %s", code, id)
		}
	})
	for _, tc := range []struct {
		name, query string
		code        int
		msg         string
	}{
		{"unknown policy", "web?policy=random", 400, "policy: unknown policy"},
		{"unknown service", "nope", 404, `no instance of service "nope"`},
		{"filtered to nothing", "web?tag=v9", 404, `no instance of service "web"`},
		{"none healthy", "down", 503, `no healthy instance of service "down"`},
		{"bad filter", "web?filter=Service.Port%20%3D%3D", 400, "filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := lbPick(t, a, tc.query)
			if code != tc.code || !strings.Contains(body, tc.msg) {
				t.Fatalf("GET lb/service/%s = %d %q, want %d with %q", tc.query, code, body, tc.code, tc.msg)
			}
		})
	}
}

// TestHealthServiceNear checks ?near: with coordinates, the agent's own
// node sorts first; an unknown node leaves the answer as it is.
func TestHealthServiceNear(t *testing.T) {
	agents := nodetest.StartClusterWith(t, 1, 2, nodetest.Options{LANGossip: true})
	for i, a := range agents {
		if err := newClient(t, a).Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: "web", Name: "web", Port: 8080 + i,
		}); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, agents[1])
	self, err := c.Agent().NodeName()
	if err != nil {
		t.Fatal(err)
	}
	// Coordinates arrive with gossip probe acks: wait until the agent has
	// one for every node and the sort puts it first, every time.
	testkit.Eventually(t, 30*time.Second, "near=_agent sorts the agent's own node first", func() bool {
		for range 5 {
			entries, _, err := c.Health().Service("web", "", false, &api.QueryOptions{Near: "_agent"})
			if err != nil || len(entries) != 3 || entries[0].Node.Node != self {
				return false
			}
		}
		return true
	})
	entries, _, err := c.Health().Service("web", "", false, &api.QueryOptions{Near: "no-such-node"})
	if err != nil || len(entries) != 3 {
		t.Fatalf("near=unknown: %v, %v", entries, err)
	}
}
