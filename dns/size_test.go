package dns_test

import (
	"testing"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// TestAnswerSize checks that UDP answers fit 512 bytes or the EDNS0 size
// (capped at 4096) with TC set when records were left out, that TCP
// carries everything, and that ARecordLimit applies to both. "big" has
// 100 instances, "huge" 300.
func TestAnswerSize(t *testing.T) {
	limit := func(n int) func(*meshdns.Config) { return func(c *meshdns.Config) { c.ARecordLimit = n } }
	udpLimit := func(n int) func(*meshdns.Config) { return func(c *meshdns.Config) { c.UDPAnswerLimit = n } }
	noTC := func(c *meshdns.Config) { c.NoTruncateFlag = true }
	tests := []struct {
		name     string
		cfg      func(*meshdns.Config)
		network  string
		qname    string
		qtype    uint16
		edns     uint16 // 0: no OPT in the query
		maxSize  int    // UDP: the reply must fit this many bytes
		wantTC   bool
		minAns   int
		maxAns   int
		wantExtr int // additional records besides OPT; -1: any
	}{
		{name: "UDP 512 A", network: "udp", qname: "big.service.consul.", qtype: dns.TypeA,
			maxSize: 512, wantTC: true, minAns: 1, maxAns: 99, wantExtr: 0},
		{name: "UDP 512 SRV", network: "udp", qname: "big.service.consul.", qtype: dns.TypeSRV,
			maxSize: 512, wantTC: true, minAns: 5, maxAns: 20, wantExtr: -1},
		{name: "UDP EDNS 4096 holds 100 A", network: "udp", qname: "big.service.consul.", qtype: dns.TypeA,
			edns: 4096, maxSize: 4096, wantTC: false, minAns: 100, maxAns: 100, wantExtr: 0},
		// An SRV record here is 43 bytes (SRV targets are not compressed):
		// 4096 bytes hold 94 of them, 512 bytes 10.
		{name: "UDP EDNS 4096 holds more SRV", network: "udp", qname: "big.service.consul.", qtype: dns.TypeSRV,
			edns: 4096, maxSize: 4096, wantTC: true, minAns: 90, maxAns: 99, wantExtr: -1},
		{name: "UDP EDNS below 512 means 512", network: "udp", qname: "big.service.consul.", qtype: dns.TypeA,
			edns: 100, maxSize: 512, wantTC: true, minAns: 1, maxAns: 99, wantExtr: 0},
		{name: "UDP EDNS above 4096 is capped", network: "udp", qname: "huge.service.consul.", qtype: dns.TypeA,
			edns: 65000, maxSize: 4096, wantTC: true, minAns: 100, maxAns: 299, wantExtr: 0},
		{name: "TCP carries all SRV and additionals", network: "tcp", qname: "big.service.consul.", qtype: dns.TypeSRV,
			minAns: 100, maxAns: 100, wantExtr: 100},
		{name: "TCP carries all A", network: "tcp", qname: "huge.service.consul.", qtype: dns.TypeA,
			minAns: 300, maxAns: 300, wantExtr: 0},
		{name: "TCP with EDNS carries all", network: "tcp", qname: "huge.service.consul.", qtype: dns.TypeA,
			edns: 1232, minAns: 300, maxAns: 300, wantExtr: 0},
		{name: "ARecordLimit over UDP", cfg: limit(10), network: "udp", qname: "big.service.consul.", qtype: dns.TypeA,
			maxSize: 512, wantTC: false, minAns: 10, maxAns: 10, wantExtr: 0},
		{name: "ARecordLimit over TCP", cfg: limit(10), network: "tcp", qname: "big.service.consul.", qtype: dns.TypeSRV,
			minAns: 10, maxAns: 10, wantExtr: 10},
		{name: "UDPAnswerLimit cuts UDP and sets TC", cfg: udpLimit(5), network: "udp", qname: "big.service.consul.", qtype: dns.TypeSRV,
			maxSize: 512, wantTC: true, minAns: 5, maxAns: 5, wantExtr: 5},
		{name: "UDPAnswerLimit leaves TCP alone", cfg: udpLimit(5), network: "tcp", qname: "big.service.consul.", qtype: dns.TypeA,
			minAns: 100, maxAns: 100, wantExtr: 0},
		{name: "UDPAnswerLimit above the count changes nothing", cfg: udpLimit(500), network: "udp", qname: "big.service.consul.", qtype: dns.TypeA,
			edns: 4096, maxSize: 4096, wantTC: false, minAns: 100, maxAns: 100, wantExtr: 0},
		{name: "NoTruncateFlag: cut without TC", cfg: noTC, network: "udp", qname: "big.service.consul.", qtype: dns.TypeA,
			maxSize: 512, wantTC: false, minAns: 1, maxAns: 99, wantExtr: 0},
		{name: "NoTruncateFlag with UDPAnswerLimit", cfg: func(c *meshdns.Config) { udpLimit(3)(c); noTC(c) }, network: "udp",
			qname: "big.service.consul.", qtype: dns.TypeA, maxSize: 512, wantTC: false, minAns: 3, maxAns: 3, wantExtr: 0},
		{name: "ARecordLimit larger than 512 bytes", cfg: limit(50), network: "udp", qname: "big.service.consul.", qtype: dns.TypeA,
			maxSize: 512, wantTC: true, minAns: 1, maxAns: 49, wantExtr: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := meshdns.DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			ts := startServer(t, cfg, newFixture())
			req := query(tc.qname, tc.qtype)
			if tc.edns != 0 {
				req.SetEdns0(tc.edns, false)
			}
			var resp *dns.Msg
			if tc.network == "udp" {
				var size int
				resp, size = exchangeRaw(t, ts.udpAddr, req)
				if size > tc.maxSize {
					t.Errorf("UDP reply is %d bytes, limit %d", size, tc.maxSize)
				}
				// "As many whole records as fit": no room for another.
				if resp.Truncated && size < tc.maxSize-64 && tc.cfg == nil {
					t.Errorf("truncated UDP reply is only %d of %d bytes", size, tc.maxSize)
				}
			} else {
				resp = exchange(t, "tcp", ts.tcpAddr, req)
			}
			if resp.Rcode != dns.RcodeSuccess {
				t.Fatalf("rcode %s", dns.RcodeToString[resp.Rcode])
			}
			if resp.Truncated != tc.wantTC {
				t.Errorf("TC %v, want %v", resp.Truncated, tc.wantTC)
			}
			if n := len(resp.Answer); n < tc.minAns || n > tc.maxAns {
				t.Errorf("%d answers, want %d to %d", n, tc.minAns, tc.maxAns)
			}
			opt := resp.IsEdns0()
			switch {
			case tc.edns == 0 && opt != nil:
				t.Error("OPT in the reply to a query without EDNS0")
			case tc.edns != 0 && opt == nil:
				t.Error("no OPT in the reply to an EDNS0 query")
			case opt != nil && (opt.UDPSize() != 4096 || opt.Version() != 0):
				t.Errorf("reply OPT size %d version %d, want 4096 and 0", opt.UDPSize(), opt.Version())
			}
			checkWhole(t, resp, tc.wantExtr)
		})
	}
}

// checkWhole checks that resp holds distinct records with the service
// TTL, and additional records only for the targets of its SRV records.
func checkWhole(t *testing.T, resp *dns.Msg, wantExtra int) {
	t.Helper()
	targets := map[string]bool{}
	seen := map[string]bool{}
	for _, rr := range resp.Answer {
		if seen[rr.String()] {
			t.Errorf("duplicate answer %v", rr)
		}
		seen[rr.String()] = true
		if rr.Header().Ttl != 5 {
			t.Errorf("answer TTL %d, want 5: %v", rr.Header().Ttl, rr)
		}
		if srv, ok := rr.(*dns.SRV); ok {
			targets[srv.Target] = true
		}
	}
	extra := 0
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		extra++
		if seen[rr.String()] {
			t.Errorf("duplicate additional %v", rr)
		}
		seen[rr.String()] = true
		if !targets[rr.Header().Name] {
			t.Errorf("additional %v is no SRV target", rr)
		}
		if rr.Header().Ttl != 5 {
			t.Errorf("additional TTL %d, want 5: %v", rr.Header().Ttl, rr)
		}
	}
	if wantExtra >= 0 && extra != wantExtra {
		t.Errorf("%d additional records, want %d", extra, wantExtra)
	}
}

// TestTruncationManyInstances asks for "many", a service of 200
// instances, with a real client over a real UDP socket and over TCP.
// Without EDNS0 the UDP reply fits 512 bytes, sets TC and holds whole
// records; with EDNS0 4096 it holds more; over TCP it holds them all, SRV
// with all 200 additional records.
func TestTruncationManyInstances(t *testing.T) {
	const n = 200
	ts := startServer(t, meshdns.DefaultConfig(), newFixture())
	for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
		t.Run(dns.TypeToString[qtype], func(t *testing.T) {
			wantExtra := 0
			if qtype == dns.TypeSRV {
				wantExtra = -1 // checked against the SRV targets
			}

			// No EDNS0: 512 bytes, measured on the wire, and the client
			// (whose buffer is 512 bytes) unpacks it.
			plain := query("many.service.consul.", qtype)
			resp, size := exchangeRaw(t, ts.udpAddr, plain)
			if size > dns.MinMsgSize || !resp.Truncated {
				t.Errorf("no EDNS0: %d bytes, TC %v; want ≤ 512 bytes and TC", size, resp.Truncated)
			}
			small := len(resp.Answer)
			if small == 0 || small >= n {
				t.Errorf("no EDNS0: %d answers, want some but not all", small)
			}
			checkWhole(t, resp, wantExtra)
			if resp := exchange(t, "udp", ts.udpAddr, plain); !resp.Truncated || len(resp.Answer) != small {
				t.Errorf("dns.Client over UDP: TC %v, %d answers; want TC, %d", resp.Truncated, len(resp.Answer), small)
			}

			// EDNS0 4096: more records, still bounded.
			big := query("many.service.consul.", qtype)
			big.SetEdns0(4096, false)
			resp, size = exchangeRaw(t, ts.udpAddr, big)
			if size > 4096 || len(resp.Answer) <= small {
				t.Errorf("EDNS0 4096: %d bytes, %d answers; want ≤ 4096 bytes and more than %d", size, len(resp.Answer), small)
			}
			if qtype == dns.TypeA && (resp.Truncated || len(resp.Answer) != n) {
				t.Errorf("EDNS0 4096: TC %v, %d A records; want all %d", resp.Truncated, len(resp.Answer), n)
			}
			checkWhole(t, resp, wantExtra)

			// TCP: everything.
			resp = exchange(t, "tcp", ts.tcpAddr, query("many.service.consul.", qtype))
			if resp.Truncated || len(resp.Answer) != n {
				t.Errorf("TCP: TC %v, %d answers; want all %d", resp.Truncated, len(resp.Answer), n)
			}
			if qtype == dns.TypeSRV {
				wantExtra = n
			}
			checkWhole(t, resp, wantExtra)
		})
	}
}
