package dns_test

import (
	"testing"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// TestSingleAnswers asks single-answer names many times over UDP and TCP:
// every reply must hold exactly one record (and for SRV its one
// additional record) of an instance that can answer the question, never
// the weight-0 one, and the picks must vary. The fixture's "lb" has
// weights 1, 2, 3, a passing instance of weight 0 and a heavy one (1000)
// whose address is unusable; "lbmix" a light IPv4 and a heavy IPv6
// instance; "pinned" sets DNS.Single on one of its three instances.
func TestSingleAnswers(t *testing.T) {
	const rounds = 150
	ts := startServer(t, meshdns.DefaultConfig(), newFixture())
	lbSRV := []string{"lb-1.node.dc1.consul.", "lb-2.node.dc1.consul.", "lb-3.node.dc1.consul."}
	tests := []struct {
		name     string
		qname    string
		qtype    uint16
		allowed  []string // the record's data: address, SRV target or CNAME target
		distinct int      // at least this many different picks over the rounds
	}{
		{name: "single label A", qname: "single.lb.service.consul.", qtype: dns.TypeA,
			allowed: []string{"10.5.0.1", "10.5.0.2", "10.5.0.3"}, distinct: 2},
		{name: "single label SRV skips instances without target", qname: "single.lb.service.consul.", qtype: dns.TypeSRV,
			allowed: lbSRV, distinct: 2},
		{name: "single label RFC 2782", qname: "SINGLE._lb._tcp.service.consul.", qtype: dns.TypeSRV,
			allowed: lbSRV, distinct: 2},
		{name: "single label ANY", qname: "single.lb.service.dc1.consul.", qtype: dns.TypeANY,
			allowed: []string{"10.5.0.1", "10.5.0.2", "10.5.0.3"}, distinct: 2},
		{name: "single label with tag and datacenter", qname: "single.v1.web.service.dc1.consul.", qtype: dns.TypeA,
			allowed: []string{"10.0.0.1", "10.0.0.4"}, distinct: 2},
		{name: "A only from IPv4 instances", qname: "single.lbmix.service.consul.", qtype: dns.TypeA,
			allowed: []string{"10.5.1.4"}, distinct: 1},
		{name: "AAAA only from IPv6 instances", qname: "single.lbmix.service.consul.", qtype: dns.TypeAAAA,
			allowed: []string{"2001:db8::5:6"}, distinct: 1},
		{name: "DNS.Single on an instance, A", qname: "pinned.service.consul.", qtype: dns.TypeA,
			allowed: []string{"10.5.2.1", "10.5.2.2", "10.5.2.3"}, distinct: 2},
		{name: "DNS.Single on an instance, SRV", qname: "_pinned._tcp.service.consul.", qtype: dns.TypeSRV,
			allowed: []string{"pin-1.node.dc1.consul.", "pin-2.node.dc1.consul.", "pin-3.node.dc1.consul."}, distinct: 2},
		{name: "hostnames only: one CNAME", qname: "single.hostonly.service.consul.", qtype: dns.TypeA,
			allowed: []string{"a.example.org.", "b.example.org."}, distinct: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			allowed := map[string]bool{}
			for _, a := range tc.allowed {
				allowed[a] = true
			}
			seen := map[string]int{}
			for i := range rounds {
				network := []string{"udp", "tcp"}[i%2]
				resp := exchange(t, network, ts.addr(network), query(tc.qname, tc.qtype))
				if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
					t.Fatalf("%s: rcode %s, %d answers, want one:\n%v", network, dns.RcodeToString[resp.Rcode], len(resp.Answer), resp)
				}
				rr := resp.Answer[0]
				if rr.Header().Ttl != 5 {
					t.Errorf("TTL %d, want 5", rr.Header().Ttl)
				}
				var data string
				switch rr := rr.(type) {
				case *dns.A:
					data = rr.A.String()
				case *dns.AAAA:
					data = rr.AAAA.String()
				case *dns.CNAME:
					data = rr.Target
				case *dns.SRV:
					data = rr.Target
					if len(resp.Extra) != 1 || resp.Extra[0].Header().Name != rr.Target {
						t.Fatalf("SRV %v with additional %v, want its one address record", rr, resp.Extra)
					}
				default:
					t.Fatalf("unexpected record %v", rr)
				}
				if !allowed[data] {
					t.Fatalf("picked %s, want one of %v", data, tc.allowed)
				}
				seen[data]++
			}
			t.Logf("picks: %v", seen)
			// With the weights above, fewer distinct picks than wanted
			// happen with a probability below 1e-8.
			if len(seen) < tc.distinct {
				t.Errorf("%d rounds picked only %v, want at least %d different", rounds, seen, tc.distinct)
			}
		})
	}
}

// TestSingleNames covers the single-answer names that have one answer
// or none.
func TestSingleNames(t *testing.T) {
	runAnswerCases(t, []answerCase{
		{
			name: "one instance", qname: "single.db.service.dc2.consul.", qtype: dns.TypeSRV,
			answer:     []string{"single.db.service.dc2.consul. 5 IN SRV 1 1 5432 d1.node.dc2.consul."},
			extra:      []string{"d1.node.dc2.consul. 5 IN A 192.168.0.1"},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc2", Service: "db"},
		},
		{
			name: "no instance of the asked family is NODATA", qname: "single.v6.service.consul.", qtype: dns.TypeA,
			ns: []string{consulSOA},
		},
		{
			name: "unknown service", qname: "single.nope.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "MX is NODATA", qname: "single.web.service.consul.", qtype: dns.TypeMX,
			ns: []string{consulSOA},
		},
		{
			name: "a service named single", qname: "single.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc1", Service: "single"},
		},
		{
			name: "a tag named single, RFC 2782 form", qname: "_web._single.service.consul.", qtype: dns.TypeSRV,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "single"},
		},
	})
}
