package node_test

import (
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/node/nodetest"
	mdns "github.com/miekg/dns"
)

func TestMaintenanceMode(t *testing.T) {
	dir := t.TempDir()
	a := nodetest.Start(t, nodetest.Options{DataDir: dir})
	c := newClient(t, a)
	for _, id := range []string{"web-1", "web-2"} {
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "web", Port: 80}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Agent().EnableServiceMaintenance("web-1", "deploying"); err != nil {
		t.Fatal(err)
	}
	if got := healthIDs(t, c, "web", true); !slices.Equal(got, []string{"web-2"}) {
		t.Fatalf("passing with web-1 in maintenance = %v", got)
	}
	checks, err := c.Agent().Checks()
	m := checks["_service_maintenance:web-1"]
	if err != nil || m == nil || m.Status != api.HealthCritical || m.Notes != "deploying" || m.ServiceID != "web-1" {
		t.Fatalf("maintenance check = %+v, %v", m, err)
	}
	if r := query(t, a.DNS, "web.service.consul", mdns.TypeSRV, "udp"); len(r.Answer) != 1 {
		t.Fatalf("DNS with web-1 in maintenance = %v", r.Answer)
	}

	// Node maintenance takes every instance out.
	if err := c.Agent().EnableNodeMaintenance(""); err != nil {
		t.Fatal(err)
	}
	if got := healthIDs(t, c, "web", true); len(got) != 0 {
		t.Fatalf("passing in node maintenance = %v", got)
	}
	if r := query(t, a.DNS, "web.service.consul", mdns.TypeA, "udp"); r.Rcode != mdns.RcodeNameError {
		t.Fatalf("DNS in node maintenance: %v", r)
	}
	if err := c.Agent().DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().DisableServiceMaintenance("web-1"); err != nil {
		t.Fatal(err)
	}
	if got := healthIDs(t, c, "web", true); !slices.Equal(got, []string{"web-1", "web-2"}) {
		t.Fatalf("passing after maintenance = %v", got)
	}

	// Bad input.
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/v1/agent/service/maintenance/web-1", 400},              // no enable
		{"/v1/agent/service/maintenance/web-1?enable=maybe", 400}, // not a bool
		{"/v1/agent/service/maintenance/nope?enable=true", 404},
		{"/v1/agent/maintenance?enable=", 400},
	} {
		if code, body := do(t, "PUT", a.HTTP+tt.path, ""); code != tt.code {
			t.Fatalf("PUT %s = %d %s, want %d", tt.path, code, body, tt.code)
		}
	}

	// Maintenance survives a restart.
	if err := c.Agent().EnableServiceMaintenance("web-2", "disk swap"); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := nodetest.Start(t, nodetest.Options{DataDir: dir})
	c = newClient(t, b)
	if got := healthIDs(t, c, "web", true); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("passing after a restart in maintenance = %v", got)
	}
}
