package dns_test

import (
	"net/netip"
	"testing"
	"time"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

const (
	// ptr6 is the ip6.arpa name of 2001:db8::6 (node n6), ptr60 of
	// 2001:db8::60 (service api6's own address).
	ptr6  = "6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
	ptr60 = "0.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
	// ptrMapped is the ip6.arpa name of ::ffff:10.0.0.1.
	ptrMapped = "1.0.0.0.0.0.a.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
)

func TestReverseAnswers(t *testing.T) {
	withReverse := func(ip string, rev meshdns.Reverse) func(*fakeResolver) {
		return func(r *fakeResolver) {
			r.reverse = map[netip.Addr]meshdns.Reverse{netip.MustParseAddr(ip): rev}
		}
	}
	runAnswerCases(t, []answerCase{
		{
			name: "v4 node and service", qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{
				"1.0.0.10.in-addr.arpa. 5 IN PTR n1.node.dc1.consul.",
				"1.0.0.10.in-addr.arpa. 5 IN PTR rev.service.dc1.consul.",
			},
		},
		{
			name: "v4 service's own address", qname: "2.0.1.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"2.0.1.10.in-addr.arpa. 5 IN PTR web.service.dc1.consul."},
		},
		{
			name: "v4 TTLs: node TTL for nodes, the service's for services",
			cfg: func(c *meshdns.Config) {
				c.NodeTTL = time.Minute
				c.ServiceTTLs = map[string]time.Duration{"r*": 7 * time.Second}
			},
			qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{
				"1.0.0.10.in-addr.arpa. 60 IN PTR n1.node.dc1.consul.",
				"1.0.0.10.in-addr.arpa. 7 IN PTR rev.service.dc1.consul.",
			},
		},
		{
			name: "v4 case-insensitive", qname: "1.0.0.10.In-Addr.ARPA.", qtype: dns.TypePTR,
			answer: []string{
				"1.0.0.10.In-Addr.ARPA. 5 IN PTR n1.node.dc1.consul.",
				"1.0.0.10.In-Addr.ARPA. 5 IN PTR rev.service.dc1.consul.",
			},
		},
		{
			name: "ANY answers PTR", qname: "2.0.1.10.in-addr.arpa.", qtype: dns.TypeANY,
			answer: []string{"2.0.1.10.in-addr.arpa. 5 IN PTR web.service.dc1.consul."},
		},
		{
			name: "v6 node", qname: ptr6, qtype: dns.TypePTR,
			answer: []string{ptr6 + " 5 IN PTR n6.node.dc1.consul."},
		},
		{
			name: "v6 service", qname: ptr60, qtype: dns.TypePTR,
			answer: []string{ptr60 + " 5 IN PTR api6.service.dc1.consul."},
		},
		{
			name: "v6 upper-case nibbles", qname: "6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.IP6.ARPA.", qtype: dns.TypePTR,
			answer: []string{"6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.IP6.ARPA. 5 IN PTR n6.node.dc1.consul."},
		},
		{
			name: "v4-mapped v6 stays v6", resolver: withReverse("::ffff:10.0.0.1", meshdns.Reverse{Nodes: []string{"mapped"}}),
			qname: ptrMapped, qtype: dns.TypePTR,
			answer: []string{ptrMapped + " 5 IN PTR mapped.node.dc1.consul."},
		},
		{
			name: "invalid labels left out, duplicates once",
			resolver: withReverse("10.9.9.9", meshdns.Reverse{
				Nodes:    []string{"ok", "bad name", "", "OK", "dotted.name"},
				Services: []string{"svc", "sv c", "SVC"},
			}),
			qname: "9.9.9.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{
				"9.9.9.10.in-addr.arpa. 5 IN PTR ok.node.dc1.consul.",
				"9.9.9.10.in-addr.arpa. 5 IN PTR svc.service.dc1.consul.",
			},
		},
		{
			name: "only invalid labels is a miss", resolver: withReverse("10.9.9.9", meshdns.Reverse{Nodes: []string{"bad name"}}),
			qname: "9.9.9.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "targets under the domain, not the alt domain", cfg: func(c *meshdns.Config) { c.AltDomain = "alt.example." },
			qname: "2.0.1.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"2.0.1.10.in-addr.arpa. 5 IN PTR web.service.dc1.consul."},
		},
		{
			name: "miss is NXDOMAIN", qname: "99.99.99.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "v6 miss is NXDOMAIN", qname: "1" + ptr6[1:], qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "partial name is NXDOMAIN", qname: "0.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "zone itself is NXDOMAIN", qname: "in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "leading zero is no address", qname: "01.0.0.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "octet over 255 is no address", qname: "256.0.0.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			// The name exists, with PTR records only: NODATA, not NXDOMAIN.
			name: "another type at a PTR name is NODATA", qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypeA,
			rcode: dns.RcodeSuccess, ns: []string{consulSOA},
		},
		{
			name: "another type at an unknown address is NXDOMAIN", qname: "77.0.0.10.in-addr.arpa.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "resolver error", qname: "99.2.0.192.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeServerFailure,
		},
		{
			name: "other arpa zones are not ours", qname: "1.0.0.10.e164.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeRefused,
		},
	})
}
