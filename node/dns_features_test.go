package node_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/nodetest"
	mdns "github.com/miekg/dns"
)

// upstream is a DNS server on 127.0.0.1, UDP and TCP on one port, that
// answers every A question with 192.0.2.1, standing in for a recursor.
func upstream(t *testing.T) string {
	t.Helper()
	var (
		pc net.PacketConn
		ln net.Listener
	)
	for range 20 { // the UDP port may be taken; try another
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if p, err := net.ListenPacket("udp", l.Addr().String()); err == nil {
			pc, ln = p, l
			break
		}
		l.Close()
	}
	if pc == nil {
		t.Fatal("no port free for UDP and TCP alike")
	}
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		resp := new(mdns.Msg)
		resp.SetReply(req)
		resp.RecursionAvailable = true
		if q := req.Question[0]; q.Qtype == mdns.TypeA {
			rr, _ := mdns.NewRR(q.Name + " 60 IN A 192.0.2.1")
			resp.Answer = append(resp.Answer, rr)
		}
		_ = w.WriteMsg(resp)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-done
		})
	}
	return pc.LocalAddr().String()
}

// TestDNSFeaturesThroughAgent drives the agent's DNS server with a real
// client for what the agent itself wires in: PTR from the catalog's
// address index, single answers from a service definition, NS naming the
// servers, the alternative domain, per-service TTLs from dns_config, and
// recursion to a configured upstream.
func TestDNSFeaturesThroughAgent(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "dns.hcl")
	if err := os.WriteFile(cfgFile, []byte(`
dns_config {
  service_ttl { "*" = "5s", "api*" = "30s" }
}
service {
  name = "api"
  id   = "api-1"
  port = 9000
  dns { single = true }
}
services {
  name = "api"
  id   = "api-2"
  port = 9001
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	recursor := upstream(t)
	alt := "mesh."
	a := nodetest.Start(t, nodetest.Options{ConfigFiles: []string{cfgFile}, Edit: func(f *config.File) {
		f.Recursors = []string{recursor}
		f.AltDomain = &alt
	}})
	c := newClient(t, a)
	// An external service at its own address, for PTR.
	if _, err := c.Catalog().Register(&api.CatalogRegistration{
		Node: "ext1", Address: "10.9.8.7",
		Service: &api.AgentService{ID: "db1", Service: "db", Address: "10.9.8.6", Port: 5432},
	}, nil); err != nil {
		t.Fatal(err)
	}

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := query(t, a.DNS, "7.8.9.10.in-addr.arpa", mdns.TypePTR, network)
			if len(r.Answer) != 1 || r.Answer[0].(*mdns.PTR).Ptr != "ext1.node.dc1.consul." {
				t.Fatalf("PTR of the node address = %v", r)
			}
			r = query(t, a.DNS, "6.8.9.10.in-addr.arpa", mdns.TypePTR, network)
			if len(r.Answer) != 1 || r.Answer[0].(*mdns.PTR).Ptr != "db.service.dc1.consul." {
				t.Fatalf("PTR of the service address = %v", r)
			}
			r = query(t, a.DNS, "1.0.0.127.in-addr.arpa", mdns.TypePTR, network)
			if len(r.Answer) != 1 || r.Answer[0].(*mdns.PTR).Ptr != "node1.node.dc1.consul." {
				t.Fatalf("PTR of the agent's own address = %v", r)
			}

			// api-1 sets dns.single: one record per answer, both seen.
			seen := map[uint16]bool{}
			for range 40 {
				r = query(t, a.DNS, "api.service.consul", mdns.TypeSRV, network)
				if len(r.Answer) != 1 {
					t.Fatalf("single service answered %d records: %v", len(r.Answer), r)
				}
				srv := r.Answer[0].(*mdns.SRV)
				if srv.Hdr.Ttl != 30 {
					t.Fatalf("api SRV TTL %d, want 30 from service_ttl api*", srv.Hdr.Ttl)
				}
				seen[srv.Port] = true
			}
			if !seen[9000] || !seen[9001] {
				t.Fatalf("single answers over 40 questions: ports %v, want both", seen)
			}

			r = query(t, a.DNS, "consul", mdns.TypeNS, network)
			if len(r.Answer) != 1 || r.Answer[0].(*mdns.NS).Ns != "node1.node.dc1.consul." || len(r.Extra) != 1 {
				t.Fatalf("NS = %v", r)
			}
			r = query(t, a.DNS, "db.service.mesh", mdns.TypeSRV, network)
			if len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].(*mdns.SRV).Target, ".addr.dc1.mesh.") {
				t.Fatalf("alt domain SRV = %v", r)
			}
			r = query(t, a.DNS, "www.example.org", mdns.TypeA, network)
			if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 || !r.RecursionAvailable || r.Authoritative {
				t.Fatalf("recursed answer = %v", r)
			}
		})
	}
}

// TestDNSRefusesWithoutRecursors checks the default: a name outside the
// domain is REFUSED, quickly.
func TestDNSRefusesWithoutRecursors(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	start := time.Now()
	r := query(t, a.DNS, "www.example.org", mdns.TypeA, "udp")
	if r.Rcode != mdns.RcodeRefused {
		t.Fatalf("outside the domain without recursors: %v", r)
	}
	t.Logf("REFUSED in %v", time.Since(start))
}
