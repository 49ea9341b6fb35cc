package dns_test

import (
	"errors"
	"testing"
	"time"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// fixtureNS and fixtureGlue are the apex NS answer on the fixture's name
// servers: "bad name" left out, the IPv4-mapped address as an A record.
var (
	fixtureNS = []string{
		"consul. 5 IN NS srv1.node.dc1.consul.",
		"consul. 5 IN NS srv2.node.dc1.consul.",
		"consul. 5 IN NS srv3.node.dc1.consul.",
		"consul. 5 IN NS srv4.node.dc1.consul.",
	}
	fixtureGlue = []string{
		"srv1.node.dc1.consul. 5 IN A 10.0.0.11",
		"srv2.node.dc1.consul. 5 IN A 10.0.0.12",
		"srv3.node.dc1.consul. 5 IN AAAA 2001:db8::13",
		"srv4.node.dc1.consul. 5 IN A 10.0.0.14",
	}
)

func TestApexAnswers(t *testing.T) {
	noServers := func(r *fakeResolver) { r.nameServers = nil }
	failing := func(r *fakeResolver) { r.nameServersErr = errors.New("gossip down") }
	runAnswerCases(t, []answerCase{
		{
			name: "SOA names the first name server", qname: "consul.", qtype: dns.TypeSOA,
			answer: []string{"consul. 0 IN SOA srv1.node.dc1.consul. hostmaster.consul. 0 3600 600 86400 0"},
		},
		{
			name: "NS with glue", qname: "consul.", qtype: dns.TypeNS,
			answer: fixtureNS, extra: fixtureGlue,
		},
		{
			name: "ANY is SOA and NS with glue", qname: "Consul.", qtype: dns.TypeANY,
			answer: append([]string{"consul. 0 IN SOA srv1.node.dc1.consul. hostmaster.consul. 0 3600 600 86400 0"}, fixtureNS...),
			extra:  fixtureGlue,
		},
		{
			name: "NS TTL is the node TTL", cfg: func(c *meshdns.Config) { c.NodeTTL = time.Minute },
			resolver: func(r *fakeResolver) { r.nameServers = r.nameServers[:1] },
			qname:    "consul.", qtype: dns.TypeNS,
			answer: []string{"consul. 60 IN NS srv2.node.dc1.consul."},
			extra:  []string{"srv2.node.dc1.consul. 60 IN A 10.0.0.12"},
		},
		{
			name: "no name servers: NS falls back", resolver: noServers, qname: "consul.", qtype: dns.TypeNS,
			answer: []string{"consul. 5 IN NS ns.consul."},
		},
		{
			name: "no name servers: SOA falls back", resolver: noServers, qname: "consul.", qtype: dns.TypeSOA,
			answer: []string{consulSOA},
		},
		{
			name: "name servers failing: NS falls back", resolver: failing, qname: "consul.", qtype: dns.TypeNS,
			answer: []string{"consul. 5 IN NS ns.consul."},
		},
		{
			name: "name servers failing: ANY falls back", resolver: failing, qname: "consul.", qtype: dns.TypeANY,
			answer: []string{consulSOA, "consul. 5 IN NS ns.consul."},
		},
		{
			name: "negative answers keep ns.<domain>", qname: "nope.node.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
	})
}

// TestApexNSOrder checks that NS records come sorted by node name, and
// that a name server listed twice (in any case) is named once.
func TestApexNSOrder(t *testing.T) {
	r := newFixture()
	r.nameServers = append(r.nameServers, meshdns.NameServer{Node: "SRV1", Address: fixtureNameServers[1].Address},
		meshdns.NameServer{Node: "a-b"}, meshdns.NameServer{Node: "a"})
	ts := startServer(t, meshdns.DefaultConfig(), r)
	resp := exchange(t, "tcp", ts.tcpAddr, query("consul.", dns.TypeNS))
	var got []string
	for _, rr := range resp.Answer {
		got = append(got, rr.(*dns.NS).Ns)
	}
	want := []string{"a.node.dc1.consul.", "a-b.node.dc1.consul.", "srv1.node.dc1.consul.", "srv2.node.dc1.consul.",
		"srv3.node.dc1.consul.", "srv4.node.dc1.consul."}
	if len(got) != len(want) {
		t.Fatalf("NS %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("NS %v, want %v", got, want)
		}
	}
	// "a" and "a-b" have no address: no glue for them.
	if len(resp.Extra) != 4 {
		t.Errorf("%d glue records, want 4: %v", len(resp.Extra), resp.Extra)
	}
}

func TestAltDomain(t *testing.T) {
	alt := func(c *meshdns.Config) { c.AltDomain = "Mesh.Example" }
	nested := func(c *meshdns.Config) { c.AltDomain = "mesh.consul." }
	const altSOA = "mesh.example. 0 IN SOA ns.mesh.example. hostmaster.mesh.example. 0 3600 600 86400 0"
	runAnswerCases(t, []answerCase{
		{
			name: "SRV targets under the alt domain", cfg: alt, qname: "web.service.mesh.example.", qtype: dns.TypeSRV,
			answer: []string{
				"web.service.mesh.example. 5 IN SRV 1 10 80 n1.node.dc1.mesh.example.",
				"web.service.mesh.example. 5 IN SRV 1 1 8080 0a010002.addr.dc1.mesh.example.",
				"web.service.mesh.example. 5 IN SRV 1 2 80 n4.node.dc1.mesh.example.",
			},
			extra: []string{
				"n1.node.dc1.mesh.example. 5 IN A 10.0.0.1",
				"0a010002.addr.dc1.mesh.example. 5 IN A 10.1.0.2",
				"n4.node.dc1.mesh.example. 5 IN A 10.0.0.4",
			},
		},
		{
			name: "the domain still answers", cfg: alt, qname: "db.service.dc2.consul.", qtype: dns.TypeSRV,
			answer: []string{"db.service.dc2.consul. 5 IN SRV 1 1 5432 d1.node.dc2.consul."},
			extra:  []string{"d1.node.dc2.consul. 5 IN A 192.168.0.1"},
		},
		{
			name: "node under the alt domain", cfg: alt, qname: "n1.node.MESH.example.", qtype: dns.TypeA,
			answer: []string{"n1.node.MESH.example. 5 IN A 10.0.0.1"},
		},
		{
			name: "NXDOMAIN SOA of the alt domain", cfg: alt, qname: "nope.service.mesh.example.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{altSOA},
		},
		{
			name: "NODATA SOA of the alt domain", cfg: alt, qname: "mesh.example.", qtype: dns.TypeA,
			ns: []string{altSOA},
		},
		{
			name: "alt apex NS", cfg: alt, resolver: func(r *fakeResolver) { r.nameServers = r.nameServers[1:2] },
			qname: "mesh.example.", qtype: dns.TypeNS,
			answer: []string{"mesh.example. 5 IN NS srv1.node.dc1.mesh.example."},
			extra:  []string{"srv1.node.dc1.mesh.example. 5 IN A 10.0.0.11"},
		},
		{
			name: "alt apex SOA", cfg: alt, qname: "mesh.example.", qtype: dns.TypeSOA,
			answer: []string{"mesh.example. 0 IN SOA srv1.node.dc1.mesh.example. hostmaster.mesh.example. 0 3600 600 86400 0"},
		},
		{
			name: "a suffix of the alt domain is not in it", cfg: alt, qname: "web.service.xmesh.example.", qtype: dns.TypeA,
			rcode: dns.RcodeRefused,
		},
		{
			name: "nested alt domain wins inside it", cfg: nested, qname: "web.service.mesh.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"web.service.mesh.consul. 5 IN SRV 1 10 80 n1.node.dc1.mesh.consul.",
				"web.service.mesh.consul. 5 IN SRV 1 1 8080 0a010002.addr.dc1.mesh.consul.",
				"web.service.mesh.consul. 5 IN SRV 1 2 80 n4.node.dc1.mesh.consul.",
			},
			extra: []string{
				"n1.node.dc1.mesh.consul. 5 IN A 10.0.0.1",
				"0a010002.addr.dc1.mesh.consul. 5 IN A 10.1.0.2",
				"n4.node.dc1.mesh.consul. 5 IN A 10.0.0.4",
			},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc1", Service: "web"},
		},
		{
			name: "nested alt domain leaves the rest to the domain", cfg: nested, qname: "db.service.dc2.consul.", qtype: dns.TypeA,
			answer: []string{"db.service.dc2.consul. 5 IN A 192.168.0.1"},
		},
	})
}
