package node_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
	mdns "github.com/miekg/dns"
)

func leaderOf(agents []*nodetest.Agent) *nodetest.Agent {
	for _, a := range agents {
		if a.IsLeader() {
			return a
		}
	}
	return nil
}

func TestClusterFormsServesAndFailsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server, 2-client cluster")
	}
	agents := nodetest.StartCluster(t, 3, 2)
	servers, clients := agents[:3], agents[3:]
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })

	// Every agent sees all five members alive.
	for _, a := range agents {
		testkit.Eventually(t, 30*time.Second, "5 alive members on "+a.HTTP, func() bool {
			code, body := do(t, "GET", a.HTTP+"/v1/agent/members", "")
			var ms []struct{ Status int }
			if code != 200 || json.Unmarshal([]byte(body), &ms) != nil || len(ms) != 5 {
				return false
			}
			for _, m := range ms {
				if m.Status != 1 {
					return false
				}
			}
			return true
		})
	}

	// A service registered on a client is visible from every node, over
	// HTTP and DNS.
	for i, cl := range clients {
		c := newClient(t, cl)
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", ID: "web-" + string(rune('a'+i)), Port: 8080 + i,
			Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "5m", Status: api.HealthPassing}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range agents {
		c := newClient(t, a)
		testkit.Eventually(t, 30*time.Second, "web on "+a.HTTP, func() bool {
			entries, _, err := c.Health().Service("web", "", true, nil)
			return err == nil && len(entries) == 2
		})
		// DNS reads are stale (allow_stale): a follower may lag a moment.
		testkit.Eventually(t, 30*time.Second, "web in DNS on "+a.HTTP, func() bool {
			return len(query(t, a.DNS, "web.service.consul", mdns.TypeSRV, "udp").Answer) == 2
		})
	}
	// Every member is a catalog node with serfHealth passing.
	c0 := newClient(t, servers[0])
	testkit.Eventually(t, 30*time.Second, "5 serfHealth checks", func() bool {
		checks, _, err := c0.Health().State(api.HealthPassing, nil)
		n := 0
		for _, hc := range checks {
			if hc.CheckID == "serfHealth" {
				n++
			}
		}
		return err == nil && n == 5
	})

	// Kill the leader without a word: a new one is elected and writes go on.
	old := leaderOf(servers)
	start := time.Now()
	rest := stopAgent(t, old, servers)
	testkit.Eventually(t, 30*time.Second, "a new leader", func() bool { return leaderOf(rest) != nil })
	elected := time.Since(start)
	t.Logf("new leader %v after the old one was killed (raft_multiplier 2)", elected)
	if elected > 10*time.Second {
		t.Fatalf("a new leader took %v", elected)
	}
	cc := newClient(t, clients[0])
	testkit.Eventually(t, 30*time.Second, "a write through a client after failover", func() bool {
		_, err := cc.Catalog().Register(&api.CatalogRegistration{Node: "ext", Address: "10.0.0.1",
			Service: &api.AgentService{Service: "after-failover", Port: 1}}, nil)
		return err == nil
	})

	// Kill a client without leave: its instances leave healthy answers on
	// every other agent within 10 s.
	dead := clients[1]
	start = time.Now()
	if err := dead.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, a := range append(rest, clients[0]) {
		c := newClient(t, a)
		testkit.Eventually(t, 30*time.Second, "the dead client's instance to leave "+a.HTTP, func() bool {
			entries, _, err := c.Health().Service("web", "", true, nil)
			if err != nil {
				return false
			}
			for _, e := range entries {
				if strings.EqualFold(e.Node.Node, "client2") {
					return false
				}
			}
			return len(entries) == 1
		})
	}
	gone := time.Since(start)
	t.Logf("a killed client's instances left every agent's healthy answers after %v", gone)
	if gone > 10*time.Second {
		t.Fatalf("instances of a dead host stayed healthy for %v", gone)
	}
}

// An alias check on a client agent (a sidecar beside its app) follows the
// app's health through the servers.
func TestAliasOnClient(t *testing.T) {
	if testing.Short() {
		t.Skip("a server and a client")
	}
	agents := nodetest.StartCluster(t, 1, 1)
	client := agents[1]
	c := newClient(t, client)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "app", Name: "app", Port: 80,
		Check: &api.AgentServiceCheck{CheckID: "app-ttl", TTL: "1m"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "sidecar", Name: "sidecar", Port: 21000,
		Check: &api.AgentServiceCheck{CheckID: "sidecar-alias", AliasService: "app"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{api.HealthCritical, api.HealthPassing} {
		if want == api.HealthPassing {
			if err := c.Agent().PassTTL("app-ttl", ""); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, 15*time.Second, "the client's alias to mirror "+want, func() bool {
			checks, err := c.Agent().Checks()
			return err == nil && checks["sidecar-alias"] != nil && checks["sidecar-alias"].Status == want
		})
	}
}

// stopAgent shuts a down without a leave (as a crash looks to the others)
// and returns the agents of group other than a.
func stopAgent(t *testing.T, a *nodetest.Agent, group []*nodetest.Agent) []*nodetest.Agent {
	t.Helper()
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	var rest []*nodetest.Agent
	for _, s := range group {
		if s != a {
			rest = append(rest, s)
		}
	}
	return rest
}
