package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

func TestRestartKeepsEveryRegistration(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1,100 registrations through Raft")
	}
	dir := t.TempDir()
	a := nodetest.Start(t, nodetest.Options{DataDir: dir})
	c := newClient(t, a)

	const external, local = 1000, 100
	start := time.Now()
	for i := range external {
		_, err := c.Catalog().Register(&api.CatalogRegistration{
			Node: fmt.Sprintf("ext-%d", i%50), Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250),
			Service: &api.AgentService{ID: fmt.Sprintf("web-%d", i), Service: "web", Port: 8000 + i},
			Checks:  api.HealthChecks{{CheckID: fmt.Sprintf("web-%d-alive", i), ServiceID: fmt.Sprintf("web-%d", i), Status: api.HealthPassing}},
		}, nil)
		if err != nil {
			t.Fatalf("catalog register %d: %v", i, err)
		}
	}
	for i := range local {
		err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: fmt.Sprintf("api-%d", i), Name: "api", Port: 9000 + i,
			Check: &api.AgentServiceCheck{CheckID: fmt.Sprintf("api-%d-ttl", i), TTL: "10m"},
		})
		if err != nil {
			t.Fatalf("agent register %d: %v", i, err)
		}
		// Passing by heartbeat, not by its definition: the restarted
		// agent must remember it.
		if err := c.Agent().PassTTL(fmt.Sprintf("api-%d-ttl", i), "ok"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("registered %d instances in %v", external+local, time.Since(start))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	// On new ephemeral ports: the server puts its new address into the
	// Raft configuration itself.
	b := nodetest.Start(t, nodetest.Options{DataDir: dir})
	t.Logf("restarted and ready in %v", time.Since(start))
	c = newClient(t, b)
	// The first read after the restart must already see everything: no
	// answer from a half-replayed log.
	web, _, err := c.Health().Service("web", "", true, nil)
	if err != nil || len(web) != external {
		t.Fatalf("after restart: %d passing web instances (%v), want %d", len(web), err, external)
	}
	apis, _, err := c.Health().Service("api", "", true, nil)
	if err != nil || len(apis) != local {
		t.Fatalf("after restart: %d passing api instances (%v), want %d", len(apis), err, local)
	}
	svcs, err := c.Agent().Services()
	if err != nil || len(svcs) != local {
		t.Fatalf("agent services after restart: %d (%v), want %d", len(svcs), err, local)
	}
	checks, err := c.Agent().Checks()
	if err != nil || len(checks) != local || checks["api-7-ttl"].Status != api.HealthPassing || checks["api-7-ttl"].Output != "ok" {
		t.Fatalf("agent checks after restart: %d, api-7-ttl = %+v (%v)", len(checks), checks["api-7-ttl"], err)
	}
	// The leader corrects its own address just after it is elected.
	testkit.Eventually(t, 10*time.Second, "peers to list the new server address", func() bool {
		peers, err := c.Status().Peers()
		return err == nil && len(peers) == 1 && peers[0] == b.ServerAddr()
	})
}
