package dns_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// fuzzConfig is the server both fuzz targets answer with: the defaults,
// an alt domain and TTL overrides. No recursors: forwarding would make
// every out-of-zone input wait for one.
func fuzzConfig() meshdns.Config {
	cfg := meshdns.DefaultConfig()
	cfg.AltDomain = "alt.example."
	cfg.ServiceTTLs = map[string]time.Duration{"web": time.Minute, "b*": 0}
	return cfg
}

// addHandleSeeds adds the well-formed queries both fuzz targets start
// from; more are in testdata/fuzz/FuzzHandle and FuzzServe.
func addHandleSeeds(f *testing.F) {
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
		{"consul.", dns.TypeANY, 512},
		{"nope.service.consul.", dns.TypeA, 512},
		{"example.com.", dns.TypeA, 0},
		{"single.lb.service.consul.", dns.TypeSRV, 0},
		{"pinned.service.alt.example.", dns.TypeA, 0},
		{"web.service.alt.example.", dns.TypeSRV, 0},
		{"1.0.0.10.in-addr.arpa.", dns.TypePTR, 0},
		{"6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", dns.TypePTR, 1232},
		{"99.2.0.192.in-addr.arpa.", dns.TypeANY, 0},
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
}

// FuzzHandle feeds Handle whatever unpacks as a DNS message. The reply
// must exist, pack, answer the request's ID, and fit its transport: 512
// bytes or the EDNS0 size (at most 4096) over UDP. Seeds are in
// testdata/fuzz/FuzzHandle and addHandleSeeds.
func FuzzHandle(f *testing.F) {
	addHandleSeeds(f)
	srv, err := meshdns.New(fuzzConfig(), newFixture())
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

// FuzzServe sends raw bytes to a Server serving UDP on 127.0.0.1: the
// whole path, miekg/dns's reading, header checks (MsgAcceptFunc) and
// unpacking included, which FuzzHandle skips. After each input it sends a
// well-formed probe and waits for the probe's reply: the server must go
// on answering. Every datagram coming back must have a 12-byte header
// with QR set, and no query may make the server log an error (a panic
// it recovered from). One server serves the whole run.
func FuzzServe(f *testing.F) {
	addHandleSeeds(f)
	// header is a DNS header: ID, flags, then the four section counts.
	header := func(id, flags, qd, an, ns, ar uint16) []byte {
		b := make([]byte, 0, 12)
		for _, v := range []uint16{id, flags, qd, an, ns, ar} {
			b = binary.BigEndian.AppendUint16(b, v)
		}
		return b
	}
	question := []byte("\x03web\x07service\x06consul\x00\x00\x01\x00\x01")
	for _, seed := range []struct {
		what string
		wire []byte
	}{
		{"empty datagram", nil},
		{"truncated header", []byte{0x12, 0x34, 0x01}},
		{"header only, one question promised", header(1, 0x0100, 1, 0, 0, 0)},
		{"qdcount 2", append(header(2, 0x0100, 2, 0, 0, 0), append(question, question...)...)},
		{"qdcount 0 with a question", append(header(3, 0x0100, 0, 0, 0, 0), question...)},
		{"a response", append(header(4, 0x8100, 1, 0, 0, 0), question...)},
		{"opcode UPDATE", append(header(5, 0x2800, 1, 0, 0, 0), question...)},
		{"answers in a query", append(header(6, 0x0100, 1, 5, 0, 0), question...)},
		{"three additional records promised", append(header(7, 0x0100, 1, 0, 0, 3), question...)},
		{"label longer than the message", append(header(8, 0x0100, 1, 0, 0, 0), "\x3fweb\x00\x00\x01\x00\x01"...)},
		{"reserved label type", append(header(9, 0x0100, 1, 0, 0, 0), "\x40web\x00\x00\x01\x00\x01"...)},
		{"compression pointer to itself", append(header(10, 0x0100, 1, 0, 0, 0), "\xc0\x0c\x00\x01\x00\x01"...)},
		{"compression loop through a label", append(header(11, 0x0100, 1, 0, 0, 0), "\x03web\xc0\x0c\x00\x01\x00\x01"...)},
		{"question cut short", append(header(12, 0x0100, 1, 0, 0, 0), question[:10]...)},
		{"OPT with short rdata", append(append(header(13, 0x0100, 1, 0, 0, 1), question...), 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 9)},
	} {
		f.Add(seed.wire)
	}

	cfg := fuzzConfig()
	errs := &errorLog{}
	cfg.Logger = slog.New(errs)
	ts := startServer(f, cfg, newFixture())
	conn, err := net.Dial("udp", ts.udpAddr)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	buf := make([]byte, 65536)
	probes := 0

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 60000 {
			t.Skip() // no datagram that large
		}
		probes++
		var inputID uint16
		if len(data) >= 2 {
			inputID = binary.BigEndian.Uint16(data)
		}
		probe := query(fmt.Sprintf("probe-%d.node.consul.", probes), dns.TypeA)
		probe.Id = inputID ^ 0x8000 // never the input's
		probeWire, err := probe.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(data); err != nil {
			t.Fatalf("send input: %v", err)
		}
		if _, err := conn.Write(probeWire); err != nil {
			t.Fatalf("send probe: %v", err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		// Replies may come in any order, and a reply to the previous
		// input may come late: read until the probe's.
		for {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("server stopped answering: %v\ninput: %q", err, data)
			}
			reply := buf[:n]
			if len(reply) < 12 || reply[2]&0x80 == 0 {
				t.Fatalf("reply %q has no header with QR set\ninput: %q", reply, data)
			}
			if binary.BigEndian.Uint16(reply) != probe.Id {
				continue
			}
			m := new(dns.Msg)
			if err := m.Unpack(reply); err == nil && len(m.Question) == 1 &&
				strings.EqualFold(m.Question[0].Name, probe.Question[0].Name) {
				if m.Rcode != dns.RcodeNameError {
					t.Fatalf("probe answered %s, want NXDOMAIN\ninput: %q", dns.RcodeToString[m.Rcode], data)
				}
				break
			}
		}
		if msg := errs.take(); msg != "" {
			t.Fatalf("server logged an error: %s\ninput: %q", msg, data)
		}
	})
}

// errorLog is a slog.Handler that keeps the first error-level record.
type errorLog struct {
	// mu guards first.
	mu    sync.Mutex
	first string
}

func (h *errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }

func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.first == "" {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		h.first = b.String()
	}
	return nil
}

func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorLog) WithGroup(string) slog.Handler      { return h }

// take returns the error kept, if any, and forgets it.
func (h *errorLog) take() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	msg := h.first
	h.first = ""
	return msg
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
