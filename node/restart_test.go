package node_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/node/config"
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
			Check: &api.AgentServiceCheck{CheckID: fmt.Sprintf("api-%d-ttl", i), TTL: "10m", Status: api.HealthPassing},
		})
		if err != nil {
			t.Fatalf("agent register %d: %v", i, err)
		}
	}
	t.Logf("registered %d instances in %v", external+local, time.Since(start))

	_, port, _ := net.SplitHostPort(a.ServerAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	b := nodetest.Start(t, nodetest.Options{DataDir: dir, Edit: func(f *config.File) {
		p, _ := strconv.Atoi(port)
		f.Ports.Server = &p // keep the Raft address the log knows
	}})
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
}
