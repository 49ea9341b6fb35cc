package node_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
	mdns "github.com/miekg/dns"
)

func query(t *testing.T, server, name string, qtype uint16, network string) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r
}

func srvPorts(r *mdns.Msg) []int {
	var ports []int
	for _, rr := range r.Answer {
		if srv, ok := rr.(*mdns.SRV); ok {
			ports = append(ports, int(srv.Port))
		}
	}
	slices.Sort(ports)
	return ports
}

func TestDNSThroughAgent(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "web.hcl")
	// A Consul user's service definition, loaded unchanged.
	if err := os.WriteFile(cfgFile, []byte(`
service {
  name = "web"
  id   = "web-cfg"
  port = 8080
  tags = ["v1", "primary"]
}
services {
  name = "cache"
  port = 6379
  check {
    id  = "cache-ttl"
    ttl = "30s"
  }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	a := nodetest.Start(t, nodetest.Options{ConfigFiles: []string{cfgFile}})
	c := newClient(t, a)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-2", Name: "web", Port: 8081, Tags: []string{"v2"}}); err != nil {
		t.Fatal(err)
	}

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := query(t, a.DNS, "web.service.consul", mdns.TypeSRV, network)
			if r.Rcode != mdns.RcodeSuccess || !slices.Equal(srvPorts(r), []int{8080, 8081}) {
				t.Fatalf("web SRV = %v", r)
			}
			for _, rr := range r.Answer {
				if srv := rr.(*mdns.SRV); srv.Target != "node1.node.dc1.consul." || srv.Hdr.Ttl != 5 {
					t.Fatalf("SRV record %v", srv)
				}
			}
			if len(r.Extra) == 0 {
				t.Fatalf("no A record for the SRV target: %v", r)
			}
			r = query(t, a.DNS, "v1.web.service.consul", mdns.TypeSRV, network)
			if !slices.Equal(srvPorts(r), []int{8080}) {
				t.Fatalf("v1.web SRV = %v", r)
			}
			r = query(t, a.DNS, "web.service.consul", mdns.TypeA, network)
			if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "127.0.0.1" {
				t.Fatalf("web A = %v", r)
			}
			// The cache's TTL check has not been heard from: critical, so
			// the name has no healthy instance.
			r = query(t, a.DNS, "cache.service.consul", mdns.TypeA, network)
			if r.Rcode != mdns.RcodeNameError {
				t.Fatalf("cache with a critical check: rcode %s", mdns.RcodeToString[r.Rcode])
			}
			r = query(t, a.DNS, "nope.service.consul", mdns.TypeA, network)
			if r.Rcode != mdns.RcodeNameError || len(r.Ns) != 1 {
				t.Fatalf("unknown name = %v", r)
			}
			if soa := r.Ns[0].(*mdns.SOA); soa.Hdr.Ttl != 0 || soa.Minttl != 0 {
				t.Fatalf("negative answer SOA caches: %v", soa)
			}
		})
	}

	if err := c.Agent().PassTTL("cache-ttl", ""); err != nil {
		t.Fatal(err)
	}
	r := query(t, a.DNS, "cache.service.consul", mdns.TypeSRV, "udp")
	if !slices.Equal(srvPorts(r), []int{6379}) {
		t.Fatalf("cache after a heartbeat = %v", r)
	}
}

func TestTTLExpiryReachesCatalog(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "beat", Port: 1,
		Check: &api.AgentServiceCheck{CheckID: "beat-ttl", TTL: "1s", Status: api.HealthPassing}})
	if err != nil {
		t.Fatal(err)
	}
	if got := healthIDs(t, c, "beat", true); len(got) != 1 {
		t.Fatalf("passing at first: %v", got)
	}
	testkit.Eventually(t, 10*time.Second, "the TTL to expire into the catalog", func() bool {
		return len(healthIDs(t, c, "beat", true)) == 0
	})
	checks, _, err := c.Health().Checks("beat", nil)
	if err != nil || len(checks) != 1 || checks[0].Output != "TTL expired" {
		t.Fatalf("checks after expiry = %+v, %v", checks, err)
	}
}
