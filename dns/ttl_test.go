package dns_test

import (
	"testing"
	"time"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// TestServiceTTLs checks that the TTL of a service's answer records, and
// of the additional records going with them, is the service's.
func TestServiceTTLs(t *testing.T) {
	ttls := func(c *meshdns.Config) {
		c.ServiceTTL = 4 * time.Second
		c.ServiceTTLs = map[string]time.Duration{
			"WEB": 30 * time.Second, // exact, in another case
			"w*":  20 * time.Second, // "warn"
			"d*":  3 * time.Second,  // "dual"; "db" is exact below
			"db":  2 * time.Second,
		}
	}
	star := func(c *meshdns.Config) {
		c.ServiceTTL = 4 * time.Second
		c.ServiceTTLs = map[string]time.Duration{"*": 9 * time.Second, "web": time.Second}
	}
	runAnswerCases(t, []answerCase{
		{
			name: "exact key, any case", cfg: ttls, qname: "Web.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"Web.service.consul. 30 IN SRV 1 10 80 n1.node.dc1.consul.",
				"Web.service.consul. 30 IN SRV 1 1 8080 0a010002.addr.dc1.consul.",
				"Web.service.consul. 30 IN SRV 1 2 80 n4.node.dc1.consul.",
			},
			extra: []string{
				"n1.node.dc1.consul. 30 IN A 10.0.0.1",
				"0a010002.addr.dc1.consul. 30 IN A 10.1.0.2",
				"n4.node.dc1.consul. 30 IN A 10.0.0.4",
			},
		},
		{
			name: "exact key with a tag", cfg: ttls, qname: "v1.web.service.consul.", qtype: dns.TypeA,
			answer: []string{"v1.web.service.consul. 30 IN A 10.0.0.1", "v1.web.service.consul. 30 IN A 10.0.0.4"},
		},
		{
			name: "prefix", cfg: ttls, qname: "warn.service.consul.", qtype: dns.TypeA,
			answer: []string{"warn.service.consul. 20 IN A 10.0.0.4"},
		},
		{
			name: "exact beats prefix", cfg: ttls, qname: "db.service.dc2.consul.", qtype: dns.TypeSRV,
			answer: []string{"db.service.dc2.consul. 2 IN SRV 1 1 5432 d1.node.dc2.consul."},
			extra:  []string{"d1.node.dc2.consul. 2 IN A 192.168.0.1"},
		},
		{
			name: "prefix with ANY", cfg: ttls, qname: "dual.service.consul.", qtype: dns.TypeANY,
			answer: []string{"dual.service.consul. 3 IN A 10.0.0.1", "dual.service.consul. 3 IN AAAA 2001:db8::6"},
		},
		{
			name: "no match: the default", cfg: ttls, qname: "v6.service.consul.", qtype: dns.TypeAAAA,
			answer: []string{"v6.service.consul. 4 IN AAAA 2001:db8::6"},
		},
		{
			name: "star is every other service", cfg: star, qname: "v6.service.consul.", qtype: dns.TypeAAAA,
			answer: []string{"v6.service.consul. 9 IN AAAA 2001:db8::6"},
		},
		{
			name: "star loses to an exact key", cfg: star, qname: "v1.web.service.consul.", qtype: dns.TypeA,
			answer: []string{"v1.web.service.consul. 1 IN A 10.0.0.1", "v1.web.service.consul. 1 IN A 10.0.0.4"},
		},
		{
			name: "node TTL untouched", cfg: ttls, qname: "n1.node.consul.", qtype: dns.TypeA,
			answer: []string{"n1.node.consul. 5 IN A 10.0.0.1"},
		},
		{
			name: "negative answers keep SOA TTL 0", cfg: ttls, qname: "down.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
	})
}
