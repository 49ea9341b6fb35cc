package dns_test

import (
	"context"
	"testing"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// FuzzHandle feeds Handle whatever unpacks as a DNS message. The reply
// must exist, pack, answer the request's ID, and fit its transport: 512
// bytes or the EDNS0 size (at most 4096) over UDP. Seeds are in
// testdata/fuzz/FuzzHandle and below.
func FuzzHandle(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  uint16
	}{
		{"web.service.consul.", dns.TypeA, 0},
		{"_web._tcp.service.dc1.consul.", dns.TypeSRV, 4096},
		{"big.service.consul.", dns.TypeSRV, 0},
		{"huge.service.consul.", dns.TypeA, 1232},
		{"n1.node.consul.", dns.TypeANY, 0},
		{"0a010002.addr.dc1.consul.", dns.TypeA, 0},
		{"consul.", dns.TypeSOA, 0},
		{"nope.service.consul.", dns.TypeA, 512},
		{"example.com.", dns.TypeA, 0},
	} {
		m := query(q.name, q.qtype)
		if q.edns != 0 {
			m.SetEdns0(q.edns, true)
		}
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
	}

	cfg := meshdns.DefaultConfig()
	srv, err := meshdns.New(cfg, newFixture())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			t.Skip()
		}
		for _, network := range []string{"udp", "tcp"} {
			resp := srv.Handle(context.Background(), req, network)
			if resp == nil {
				t.Fatalf("%s: nil reply to %v", network, req)
			}
			wire, err := resp.Pack()
			if err != nil {
				t.Fatalf("%s: reply does not pack: %v\nrequest:\n%v\nreply:\n%v", network, err, req, resp)
			}
			if resp.Id != req.Id || !resp.Response {
				t.Fatalf("%s: reply id %d QR %v to request id %d", network, resp.Id, resp.Response, req.Id)
			}
			limit := dns.MaxMsgSize
			if network == "udp" {
				limit = udpLimit(req)
			}
			if len(wire) > limit {
				t.Fatalf("%s: reply is %d bytes, limit %d\nrequest:\n%v", network, len(wire), limit, req)
			}
		}
	})
}

// udpLimit is the largest UDP reply req allows: 512 bytes, or its EDNS0
// size up to 4096 when it has exactly one OPT record.
func udpLimit(req *dns.Msg) int {
	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil {
				return dns.MinMsgSize
			}
			opt = o
		}
	}
	if opt == nil {
		return dns.MinMsgSize
	}
	return min(max(int(opt.UDPSize()), dns.MinMsgSize), 4096)
}
