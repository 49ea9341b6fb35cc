package dns_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

const consulSOA = "consul. 0 IN SOA ns.consul. hostmaster.consul. 0 3600 600 86400 0"

// answerCase is one question to a server on the fixture, asked over UDP
// and TCP, with the reply expected record by record.
type answerCase struct {
	name       string
	cfg        func(*meshdns.Config)
	resolver   func(*fakeResolver) // changes the fixture
	qname      string
	qtype      uint16
	rcode      int
	answer     []string
	ns         []string
	extra      []string
	wantLookup *meshdns.ServiceLookup
	ignoreTags bool // the resolver leaves tag filtering to the server
}

// runAnswerCases runs tests, each against a server of its own. Replies
// are authoritative unless REFUSED, and offer recursion only when the
// config has recursors. Each case runs twice: once with a plain Resolver,
// once with a ReusingResolver whose answers stay fresh, so that the
// second and later questions take the prebuilt records.
func runAnswerCases(t *testing.T, tests []answerCase) {
	t.Helper()
	for _, tc := range tests {
		for _, reuse := range []bool{false, true} {
			name := tc.name
			if reuse {
				name += "/reused"
			}
			t.Run(name, func(t *testing.T) { runAnswerCase(t, tc, reuse) })
		}
	}
}

func runAnswerCase(t *testing.T, tc answerCase, reuse bool) {
	cfg := meshdns.DefaultConfig()
	if tc.cfg != nil {
		tc.cfg(&cfg)
	}
	r := newFixture()
	r.ignoreTags = tc.ignoreTags
	if tc.resolver != nil {
		tc.resolver(r)
	}
	var res meshdns.Resolver = r
	if reuse {
		res = &reusingResolver{fakeResolver: r, stale: make(chan struct{})}
	}
	ts := startServer(t, cfg, res)
	for _, network := range []string{"udp", "tcp", "udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			req := query(tc.qname, tc.qtype)
			resp := exchange(t, network, ts.addr(network), req)
			if resp.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
			}
			if wantAA := tc.rcode != dns.RcodeRefused; resp.Authoritative != wantAA {
				t.Errorf("AA %v, want %v", resp.Authoritative, wantAA)
			}
			if wantRA := len(cfg.Recursors) > 0; resp.RecursionAvailable != wantRA {
				t.Errorf("RA %v, want %v", resp.RecursionAvailable, wantRA)
			}
			if resp.Truncated {
				t.Error("TC set")
			}
			if !reflect.DeepEqual(resp.Question, req.Question) {
				t.Errorf("question %v, want %v", resp.Question, req.Question)
			}
			checkRRs(t, "answer", resp.Answer, tc.answer)
			checkRRs(t, "authority", resp.Ns, tc.ns)
			checkRRs(t, "additional", resp.Extra, tc.extra)
		})
	}
	if tc.wantLookup != nil {
		seen := r.seen()
		if len(seen) == 0 || seen[len(seen)-1] != *tc.wantLookup {
			t.Errorf("resolver lookups %+v, want last %+v", seen, *tc.wantLookup)
		}
	}
}

func TestServerAnswers(t *testing.T) {
	onlyPassing := func(c *meshdns.Config) { c.OnlyPassing = true }
	runAnswerCases(t, []answerCase{
		{
			name: "A healthy instances", qname: "web.service.consul.", qtype: dns.TypeA,
			answer: []string{
				"web.service.consul. 5 IN A 10.0.0.1",
				"web.service.consul. 5 IN A 10.1.0.2",
				"web.service.consul. 5 IN A 10.0.0.4",
			},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc1", Service: "web"},
		},
		{
			name: "A only passing leaves warning out", cfg: onlyPassing, qname: "web.service.consul.", qtype: dns.TypeA,
			answer: []string{
				"web.service.consul. 5 IN A 10.0.0.1",
				"web.service.consul. 5 IN A 10.1.0.2",
			},
		},
		{
			name: "SRV with weights and additional", qname: "web.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"web.service.consul. 5 IN SRV 1 10 80 n1.node.dc1.consul.",
				"web.service.consul. 5 IN SRV 1 1 8080 0a010002.addr.dc1.consul.",
				"web.service.consul. 5 IN SRV 1 2 80 n4.node.dc1.consul.",
			},
			extra: []string{
				"n1.node.dc1.consul. 5 IN A 10.0.0.1",
				"0a010002.addr.dc1.consul. 5 IN A 10.1.0.2",
				"n4.node.dc1.consul. 5 IN A 10.0.0.4",
			},
		},
		{
			name: "SRV only passing", cfg: onlyPassing, qname: "web.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"web.service.consul. 5 IN SRV 1 10 80 n1.node.dc1.consul.",
				"web.service.consul. 5 IN SRV 1 1 8080 0a010002.addr.dc1.consul.",
			},
			extra: []string{
				"n1.node.dc1.consul. 5 IN A 10.0.0.1",
				"0a010002.addr.dc1.consul. 5 IN A 10.1.0.2",
			},
		},
		{
			name: "TTLs from config", cfg: func(c *meshdns.Config) { c.ServiceTTL, c.NodeTTL = 30*time.Second, time.Minute },
			qname: "web.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"web.service.consul. 30 IN SRV 1 10 80 n1.node.dc1.consul.",
				"web.service.consul. 30 IN SRV 1 1 8080 0a010002.addr.dc1.consul.",
				"web.service.consul. 30 IN SRV 1 2 80 n4.node.dc1.consul.",
			},
			extra: []string{
				"n1.node.dc1.consul. 30 IN A 10.0.0.1",
				"0a010002.addr.dc1.consul. 30 IN A 10.1.0.2",
				"n4.node.dc1.consul. 30 IN A 10.0.0.4",
			},
		},
		{
			name: "node TTL from config", cfg: func(c *meshdns.Config) { c.ServiceTTL, c.NodeTTL = 30*time.Second, time.Minute },
			qname: "n1.node.consul.", qtype: dns.TypeA,
			answer: []string{"n1.node.consul. 60 IN A 10.0.0.1"},
		},
		{
			name: "tag filter", qname: "v1.web.service.consul.", qtype: dns.TypeA,
			answer: []string{
				"v1.web.service.consul. 5 IN A 10.0.0.1",
				"v1.web.service.consul. 5 IN A 10.0.0.4",
			},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "v1"},
		},
		{
			name: "tag filter with a resolver ignoring tags", ignoreTags: true, qname: "v1.web.service.consul.", qtype: dns.TypeA,
			answer: []string{
				"v1.web.service.consul. 5 IN A 10.0.0.1",
				"v1.web.service.consul. 5 IN A 10.0.0.4",
			},
		},
		{
			name: "tag filter without match", qname: "v9.web.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "RFC 2782 with tag", qname: "_web._v1.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"_web._v1.service.consul. 5 IN SRV 1 10 80 n1.node.dc1.consul.",
				"_web._v1.service.consul. 5 IN SRV 1 2 80 n4.node.dc1.consul.",
			},
			extra: []string{
				"n1.node.dc1.consul. 5 IN A 10.0.0.1",
				"n4.node.dc1.consul. 5 IN A 10.0.0.4",
			},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "v1"},
		},
		{
			name: "RFC 2782 _tcp means no tag", qname: "_web._tcp.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"_web._tcp.service.consul. 5 IN SRV 1 10 80 n1.node.dc1.consul.",
				"_web._tcp.service.consul. 5 IN SRV 1 1 8080 0a010002.addr.dc1.consul.",
				"_web._tcp.service.consul. 5 IN SRV 1 2 80 n4.node.dc1.consul.",
			},
			extra: []string{
				"n1.node.dc1.consul. 5 IN A 10.0.0.1",
				"0a010002.addr.dc1.consul. 5 IN A 10.1.0.2",
				"n4.node.dc1.consul. 5 IN A 10.0.0.4",
			},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc1", Service: "web"},
		},
		{
			name: "datacenter label A", qname: "db.service.dc2.consul.", qtype: dns.TypeA,
			answer:     []string{"db.service.dc2.consul. 5 IN A 192.168.0.1"},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc2", Service: "db"},
		},
		{
			name: "datacenter label SRV", qname: "db.service.dc2.consul.", qtype: dns.TypeSRV,
			answer: []string{"db.service.dc2.consul. 5 IN SRV 1 1 5432 d1.node.dc2.consul."},
			extra:  []string{"d1.node.dc2.consul. 5 IN A 192.168.0.1"},
		},
		{
			name: "service unknown in datacenter", qname: "web.service.dc2.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "node A", qname: "n1.node.consul.", qtype: dns.TypeA,
			answer: []string{"n1.node.consul. 5 IN A 10.0.0.1"},
		},
		{
			name: "node A with datacenter", qname: "d1.node.dc2.consul.", qtype: dns.TypeA,
			answer: []string{"d1.node.dc2.consul. 5 IN A 192.168.0.1"},
		},
		{
			name: "node AAAA", qname: "n6.node.consul.", qtype: dns.TypeAAAA,
			answer: []string{"n6.node.consul. 5 IN AAAA 2001:db8::6"},
		},
		{
			name: "node A on IPv6-only node is NODATA", qname: "n6.node.consul.", qtype: dns.TypeA,
			ns: []string{consulSOA},
		},
		{
			name: "node with hostname address", qname: "h1.node.consul.", qtype: dns.TypeA,
			answer: []string{"h1.node.consul. 5 IN CNAME h1.example.org."},
		},
		{
			name: "node with hostname address is an alias for every type", qname: "h1.node.consul.", qtype: dns.TypeTXT,
			answer: []string{"h1.node.consul. 5 IN CNAME h1.example.org."},
		},
		{
			name: "unknown node", qname: "nope.node.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "unknown service", qname: "nope.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "every instance critical", qname: "down.service.consul.", qtype: dns.TypeSRV,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "warning instance", qname: "warn.service.consul.", qtype: dns.TypeA,
			answer: []string{"warn.service.consul. 5 IN A 10.0.0.4"},
		},
		{
			name: "warning instance with only passing", cfg: onlyPassing, qname: "warn.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "AAAA on IPv4-only service is NODATA", qname: "web.service.consul.", qtype: dns.TypeAAAA,
			ns: []string{consulSOA},
		},
		{
			name: "MX is NODATA", qname: "web.service.consul.", qtype: dns.TypeMX,
			ns: []string{consulSOA},
		},
		{
			name: "AAAA", qname: "v6.service.consul.", qtype: dns.TypeAAAA,
			answer: []string{"v6.service.consul. 5 IN AAAA 2001:db8::6"},
		},
		{
			name: "A on IPv6-only service is NODATA", qname: "v6.service.consul.", qtype: dns.TypeA,
			ns: []string{consulSOA},
		},
		{
			name: "SRV on IPv6", qname: "v6.service.consul.", qtype: dns.TypeSRV,
			answer: []string{"v6.service.consul. 5 IN SRV 1 1 443 n6.node.dc1.consul."},
			extra:  []string{"n6.node.dc1.consul. 5 IN AAAA 2001:db8::6"},
		},
		{
			name: "ANY answers both families", qname: "dual.service.consul.", qtype: dns.TypeANY,
			answer: []string{
				"dual.service.consul. 5 IN A 10.0.0.1",
				"dual.service.consul. 5 IN AAAA 2001:db8::6",
			},
		},
		{
			name: "hostname instance A is a CNAME", qname: "ext.service.consul.", qtype: dns.TypeA,
			answer: []string{"ext.service.consul. 5 IN CNAME db.example.org."},
		},
		{
			name: "hostname instance SRV targets the hostname", qname: "ext.service.consul.", qtype: dns.TypeSRV,
			answer: []string{"ext.service.consul. 5 IN SRV 1 1 5432 db.example.org."},
		},
		{
			name: "hostname node SRV has CNAME additional", qname: "hostnode.service.consul.", qtype: dns.TypeSRV,
			answer: []string{"hostnode.service.consul. 5 IN SRV 1 1 80 h1.node.dc1.consul."},
			extra:  []string{"h1.node.dc1.consul. 5 IN CNAME h1.example.org."},
		},
		{
			name: "two instances on one node: one A", qname: "same.service.consul.", qtype: dns.TypeA,
			answer: []string{"same.service.consul. 5 IN A 10.0.0.1"},
		},
		{
			name: "two instances on one node: two SRV, one additional", qname: "same.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"same.service.consul. 5 IN SRV 1 1 81 n1.node.dc1.consul.",
				"same.service.consul. 5 IN SRV 1 1 82 n1.node.dc1.consul.",
			},
			extra: []string{"n1.node.dc1.consul. 5 IN A 10.0.0.1"},
		},
		{
			name: "case-insensitive, case of the question kept", qname: "V1.Web.SERVICE.Consul.", qtype: dns.TypeA,
			answer: []string{
				"V1.Web.SERVICE.Consul. 5 IN A 10.0.0.1",
				"V1.Web.SERVICE.Consul. 5 IN A 10.0.0.4",
			},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "v1"},
		},
		{
			name: "addr name IPv4", qname: "0a010002.addr.dc1.consul.", qtype: dns.TypeA,
			answer: []string{"0a010002.addr.dc1.consul. 5 IN A 10.1.0.2"},
		},
		{
			name: "addr name IPv6", qname: "20010db8000000000000000000000006.addr.dc1.consul.", qtype: dns.TypeAAAA,
			answer: []string{"20010db8000000000000000000000006.addr.dc1.consul. 5 IN AAAA 2001:db8::6"},
		},
		{
			name: "addr name AAAA on IPv4 is NODATA", qname: "0a010002.addr.dc1.consul.", qtype: dns.TypeAAAA,
			ns: []string{consulSOA},
		},
		{
			name: "apex A is NODATA", qname: "consul.", qtype: dns.TypeA,
			ns: []string{consulSOA},
		},
		{
			name: "too many labels", qname: "a.b.c.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "no kind label", qname: "foo.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "kind label alone", qname: "service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "bad addr label", qname: "zz.addr.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "outside the domain", qname: "example.com.", qtype: dns.TypeA,
			rcode: dns.RcodeRefused,
		},
		{
			name: "domain as a label elsewhere", qname: "web.service.consul.example.com.", qtype: dns.TypeA,
			rcode: dns.RcodeRefused,
		},
		{
			name: "root", qname: ".", qtype: dns.TypeNS,
			rcode: dns.RcodeRefused,
		},
		{
			name: "resolver error on service", qname: "broken.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeServerFailure,
		},
		{
			name: "resolver error on node", qname: "broken.node.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeServerFailure,
		},
		{
			name: "configured domain", cfg: func(c *meshdns.Config) { c.Domain = "Meshd.Example" },
			qname: "web.service.meshd.example.", qtype: dns.TypeSRV,
			answer: []string{
				"web.service.meshd.example. 5 IN SRV 1 10 80 n1.node.dc1.meshd.example.",
				"web.service.meshd.example. 5 IN SRV 1 1 8080 0a010002.addr.dc1.meshd.example.",
				"web.service.meshd.example. 5 IN SRV 1 2 80 n4.node.dc1.meshd.example.",
			},
			extra: []string{
				"n1.node.dc1.meshd.example. 5 IN A 10.0.0.1",
				"0a010002.addr.dc1.meshd.example. 5 IN A 10.1.0.2",
				"n4.node.dc1.meshd.example. 5 IN A 10.0.0.4",
			},
		},
		{
			name: "configured domain NXDOMAIN SOA", cfg: func(c *meshdns.Config) { c.Domain = "meshd.example." },
			qname: "nope.service.meshd.example.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError,
			ns:    []string{"meshd.example. 0 IN SOA ns.meshd.example. hostmaster.meshd.example. 0 3600 600 86400 0"},
		},
		{
			name: "configured domain refuses consul.", cfg: func(c *meshdns.Config) { c.Domain = "meshd.example." },
			qname: "web.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeRefused,
		},
		{
			name: "configured datacenter", cfg: func(c *meshdns.Config) { c.Datacenter = "dc2" },
			qname: "db.service.consul.", qtype: dns.TypeSRV,
			answer:     []string{"db.service.consul. 5 IN SRV 1 1 5432 d1.node.dc2.consul."},
			extra:      []string{"d1.node.dc2.consul. 5 IN A 192.168.0.1"},
			wantLookup: &meshdns.ServiceLookup{Datacenter: "dc2", Service: "db"},
		},
	})
}

// TestServerShuffles checks that answers come in varying order, so that
// clients taking the first record spread their load.
func TestServerShuffles(t *testing.T) {
	srv, err := meshdns.New(meshdns.DefaultConfig(), newFixture())
	if err != nil {
		t.Fatal(err)
	}
	for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
		t.Run(dns.TypeToString[qtype], func(t *testing.T) {
			firsts := map[string]bool{}
			for range 20 {
				resp := srv.Handle(t.Context(), query("big.service.consul.", qtype), "tcp")
				if len(resp.Answer) != 100 {
					t.Fatalf("got %d answers, want 100", len(resp.Answer))
				}
				firsts[resp.Answer[0].String()] = true
			}
			// 20 draws from 100 are all the same with probability 1e-38.
			if len(firsts) < 2 {
				t.Errorf("first answer was always %v", firsts)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	t.Run("idempotent, Serve returns nil", func(t *testing.T) {
		srv, err := meshdns.New(meshdns.DefaultConfig(), newFixture())
		if err != nil {
			t.Fatal(err)
		}
		pc, l := listen(t)
		udpCh, tcpCh := make(chan error, 1), make(chan error, 1)
		go func() { udpCh <- srv.ServeUDP(pc) }()
		go func() { tcpCh <- srv.ServeTCP(l) }()
		// Answers on both prove both servers started.
		for _, network := range []string{"udp", "tcp"} {
			addr := pc.LocalAddr().String()
			if network == "tcp" {
				addr = l.Addr().String()
			}
			if resp := exchange(t, network, addr, query("web.service.consul.", dns.TypeA)); len(resp.Answer) == 0 {
				t.Fatalf("no answer over %s", network)
			}
		}
		for i := range 3 {
			if err := srv.Shutdown(t.Context()); err != nil {
				t.Fatalf("Shutdown #%d: %v", i+1, err)
			}
		}
		for name, ch := range map[string]chan error{"ServeUDP": udpCh, "ServeTCP": tcpCh} {
			if err := waitErr(t, ch); err != nil {
				t.Errorf("%s returned %v, want nil", name, err)
			}
		}
		// Nothing left to wait for: an ended ctx does not matter.
		ended, cancel := context.WithCancel(t.Context())
		cancel()
		if err := srv.Shutdown(ended); err != nil {
			t.Errorf("Shutdown after shutdown, ended ctx: %v", err)
		}
		// Sockets are closed.
		if _, err := pc.WriteTo([]byte{0}, pc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("UDP socket still open: %v", err)
		}
		if _, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second); err == nil {
			t.Error("TCP listener still accepting")
		}
	})

	t.Run("Serve after Shutdown", func(t *testing.T) {
		srv, err := meshdns.New(meshdns.DefaultConfig(), newFixture())
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Shutdown(t.Context()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		pc, l := listen(t)
		if err := srv.ServeUDP(pc); !errors.Is(err, meshdns.ErrServerClosed) {
			t.Errorf("ServeUDP after Shutdown: %v, want ErrServerClosed", err)
		}
		if err := srv.ServeTCP(l); !errors.Is(err, meshdns.ErrServerClosed) {
			t.Errorf("ServeTCP after Shutdown: %v, want ErrServerClosed", err)
		}
		if _, err := pc.WriteTo([]byte{0}, pc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("UDP socket left open: %v", err)
		}
	})

	t.Run("nil sockets", func(t *testing.T) {
		srv, err := meshdns.New(meshdns.DefaultConfig(), newFixture())
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.ServeUDP(nil); !errors.Is(err, meshdns.ErrNilConn) {
			t.Errorf("ServeUDP(nil): %v", err)
		}
		if err := srv.ServeTCP(nil); !errors.Is(err, meshdns.ErrNilConn) {
			t.Errorf("ServeTCP(nil): %v", err)
		}
	})

	// Shutdown right after Serve, while the servers may still be starting,
	// must stop them: Serve returns and does not serve on.
	t.Run("racing Serve", func(t *testing.T) {
		for range 50 {
			srv, err := meshdns.New(meshdns.DefaultConfig(), newFixture())
			if err != nil {
				t.Fatal(err)
			}
			pc, l := listen(t)
			udpCh, tcpCh := make(chan error, 1), make(chan error, 1)
			go func() { udpCh <- srv.ServeUDP(pc) }()
			go func() { tcpCh <- srv.ServeTCP(l) }()
			if err := srv.Shutdown(t.Context()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			for name, ch := range map[string]chan error{"ServeUDP": udpCh, "ServeTCP": tcpCh} {
				if err := waitErr(t, ch); err != nil && !errors.Is(err, meshdns.ErrServerClosed) {
					t.Errorf("%s: %v", name, err)
				}
			}
		}
	})

	// When ctx ends before the queries in flight, Shutdown cancels their
	// Resolver calls and still waits for them.
	t.Run("cancels and waits for queries in flight", func(t *testing.T) {
		r := &blockingResolver{enteredCh: make(chan struct{})}
		cfg := meshdns.DefaultConfig()
		cfg.Logger = testLogger(t)
		srv, err := meshdns.New(cfg, r)
		if err != nil {
			t.Fatal(err)
		}
		pc, _ := listen(t)
		serveCh := make(chan error, 1)
		go func() { serveCh <- srv.ServeUDP(pc) }()
		// Send without waiting for a reply: the socket may close first.
		conn, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wire, err := query("web.service.consul.", dns.TypeA).Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(wire); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.enteredCh:
		case <-time.After(10 * time.Second):
			t.Fatal("query never reached the resolver")
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown with an ended ctx: %v, want context.Canceled", err)
		}
		if !r.returned.Load() {
			t.Error("Shutdown returned before the resolver call did")
		}
		if err := waitErr(t, serveCh); err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
	})
}

// blockingResolver blocks every service lookup until its ctx ends.
type blockingResolver struct {
	enteredCh chan struct{}
	entered   atomic.Bool
	returned  atomic.Bool
}

func (r *blockingResolver) ServiceInstances(ctx context.Context, _ meshdns.ServiceLookup) ([]catalog.CheckServiceNode, error) {
	if !r.entered.Swap(true) {
		close(r.enteredCh)
	}
	<-ctx.Done()
	r.returned.Store(true)
	return nil, ctx.Err()
}

func (r *blockingResolver) Node(context.Context, string, string) (*catalog.Node, error) {
	return nil, nil
}

func (r *blockingResolver) ReverseLookup(context.Context, netip.Addr) (meshdns.Reverse, error) {
	return meshdns.Reverse{}, nil
}

func (r *blockingResolver) NameServers(context.Context) ([]meshdns.NameServer, error) {
	return nil, nil
}

func listen(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return pc, l
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}
