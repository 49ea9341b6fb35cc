package dns_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// upstreamQuery is what the test recursor saw of one query.
type upstreamQuery struct {
	network string
	name    string
	id      uint16
	rd, cd  bool
	edns    bool
	udpSize uint16
	do      bool
}

// upstream is a miekg/dns server on 127.0.0.1, UDP and TCP on one port,
// standing in for a recursor. It answers:
//
//	example.com. A              192.0.2.1
//	nx.example.com.             NXDOMAIN with the example.com. SOA
//	trunc.example.com. A        TC and no record over UDP, three A over TCP
//	big.example.com. A          100 A records
//	cookie.example.com.         the extended rcode BADCOOKIE
//	mismatch.example.com.       a reply to the question example.com.
//	99.99.99.10.in-addr.arpa.   PTR upstream.example.
//	anything else               SERVFAIL
type upstream struct {
	addr string

	// queriesMu guards queries.
	queriesMu sync.Mutex
	queries   []upstreamQuery
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	pc, l := listenSamePort(t)
	u.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Net: "udp", Handler: dns.HandlerFunc(u.serveDNS)},
		{Listener: l, Net: "tcp", Handler: dns.HandlerFunc(u.serveDNS)},
	} {
		startedCh := make(chan struct{})
		doneCh := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(startedCh) }
		go func() {
			defer close(doneCh)
			if err := srv.ActivateAndServe(); err != nil {
				t.Errorf("upstream %s: %v", srv.Net, err)
			}
		}()
		select {
		case <-startedCh:
		case <-doneCh:
			t.Fatalf("upstream %s did not start", srv.Net)
		case <-time.After(10 * time.Second):
			t.Fatalf("upstream %s did not start", srv.Net)
		}
		t.Cleanup(func() {
			if err := srv.Shutdown(); err != nil {
				t.Errorf("upstream %s shutdown: %v", srv.Net, err)
			}
			<-doneCh
		})
	}
	return u
}

// listenSamePort binds UDP and TCP on one loopback port.
func listenSamePort(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue // the TCP port is taken: try another
		}
		return pc, l
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

func (u *upstream) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	network := w.LocalAddr().Network()
	seen := upstreamQuery{network: network, name: q.Name, id: req.Id, rd: req.RecursionDesired, cd: req.CheckingDisabled}
	if opt := req.IsEdns0(); opt != nil {
		seen.edns, seen.udpSize, seen.do = true, opt.UDPSize(), opt.Do()
	}
	u.queriesMu.Lock()
	u.queries = append(u.queries, seen)
	u.queriesMu.Unlock()

	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		return r
	}
	switch strings.ToLower(q.Name) {
	case "example.com.":
		m.Answer = []dns.RR{rr(q.Name + " 300 IN A 192.0.2.1")}
	case "nx.example.com.":
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{rr("example.com. 60 IN SOA ns.example.com. hostmaster.example.com. 1 7200 3600 86400 60")}
	case "trunc.example.com.":
		if network == "udp" {
			m.Truncated = true
			break
		}
		for i := 1; i <= 3; i++ {
			m.Answer = append(m.Answer, rr(fmt.Sprintf("%s 300 IN A 192.0.2.%d", q.Name, i)))
		}
	case "big.example.com.":
		for i := range 100 {
			m.Answer = append(m.Answer, rr(fmt.Sprintf("%s 300 IN A 198.51.100.%d", q.Name, i)))
		}
	case "cookie.example.com.":
		m.Rcode = dns.RcodeBadCookie
	case "mismatch.example.com.":
		m.Question[0].Name = "example.com."
		m.Answer = []dns.RR{rr("example.com. 300 IN A 192.0.2.1")}
	case "99.99.99.10.in-addr.arpa.":
		m.Answer = []dns.RR{rr(q.Name + " 300 IN PTR upstream.example.")}
	default:
		m.Rcode = dns.RcodeServerFailure
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(4096, opt.Do())
	}
	if network == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func (u *upstream) seen() []upstreamQuery {
	u.queriesMu.Lock()
	defer u.queriesMu.Unlock()
	return append([]upstreamQuery(nil), u.queries...)
}

// deadRecursors returns a port nothing listens on (UDP and TCP refuse at
// once) and one that takes queries and never answers (both time out).
func deadRecursors(t *testing.T) (closed, silent string) {
	t.Helper()
	pc, l := listenSamePort(t)
	closed = pc.LocalAddr().String()
	pc.Close()
	l.Close()
	pc, l = listenSamePort(t)
	t.Cleanup(func() { pc.Close(); l.Close() })
	return closed, pc.LocalAddr().String()
}

func recursorServer(t *testing.T, timeout time.Duration, recursors ...string) *testServer {
	t.Helper()
	cfg := meshdns.DefaultConfig()
	cfg.Recursors = recursors
	cfg.RecursorTimeout = timeout
	return startServer(t, cfg, newFixture())
}

// checkForwarded checks the header of a relayed reply to req.
func checkForwarded(t *testing.T, req, resp *dns.Msg, rcode int) {
	t.Helper()
	if resp.Rcode != rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[rcode])
	}
	if resp.Id != req.Id {
		t.Errorf("id %d, want the client's %d", resp.Id, req.Id)
	}
	if resp.Authoritative || !resp.RecursionAvailable {
		t.Errorf("AA %v RA %v, want false true", resp.Authoritative, resp.RecursionAvailable)
	}
	if len(resp.Question) != 1 || resp.Question[0] != req.Question[0] {
		t.Errorf("question %v, want %v", resp.Question, req.Question)
	}
}

func TestRecursorForwarding(t *testing.T) {
	up := startUpstream(t)
	ts := recursorServer(t, 2*time.Second, up.addr)

	for _, network := range []string{"udp", "tcp"} {
		t.Run("A over "+network, func(t *testing.T) {
			req := query("Example.COM.", dns.TypeA)
			req.Id = 4242
			before := len(up.seen())
			resp := exchange(t, network, ts.addr(network), req)
			checkForwarded(t, req, resp, dns.RcodeSuccess)
			checkRRs(t, "answer", resp.Answer, []string{"Example.COM. 300 IN A 192.0.2.1"})
			if resp.IsEdns0() != nil {
				t.Error("OPT in the reply to a query without EDNS0")
			}
			seen := up.seen()[before:]
			if len(seen) != 1 {
				t.Fatalf("upstream saw %+v, want one query", seen)
			}
			got := seen[0]
			if got.network != network || !got.rd || got.cd || !got.edns || got.udpSize != 4096 || got.do {
				t.Errorf("upstream saw %+v, want over %s with RD, EDNS0 size 4096, no CD or DO", got, network)
			}
		})
	}

	t.Run("fresh upstream IDs", func(t *testing.T) {
		before := len(up.seen())
		for range 3 {
			req := query("example.com.", dns.TypeA)
			req.Id = 4242
			checkForwarded(t, req, exchange(t, "udp", ts.udpAddr, req), dns.RcodeSuccess)
		}
		same := 0
		for _, q := range up.seen()[before:] {
			if q.id == 4242 {
				same++
			}
		}
		if same == 3 { // by chance: 2^-48
			t.Error("upstream got the client's ID every time")
		}
	})

	t.Run("RD and CD kept", func(t *testing.T) {
		req := query("example.com.", dns.TypeA)
		req.RecursionDesired, req.CheckingDisabled = false, true
		before := len(up.seen())
		resp := exchange(t, "udp", ts.udpAddr, req)
		checkForwarded(t, req, resp, dns.RcodeSuccess)
		if resp.RecursionDesired || !resp.CheckingDisabled {
			t.Errorf("reply RD %v CD %v, want false true", resp.RecursionDesired, resp.CheckingDisabled)
		}
		if seen := up.seen()[before:]; len(seen) != 1 || seen[0].rd || !seen[0].cd {
			t.Errorf("upstream saw %+v, want RD false CD true", seen)
		}
	})

	t.Run("NXDOMAIN relayed", func(t *testing.T) {
		req := query("nx.example.com.", dns.TypeA)
		resp := exchange(t, "udp", ts.udpAddr, req)
		checkForwarded(t, req, resp, dns.RcodeNameError)
		// checkRRs zeroes SOA serials.
		checkRRs(t, "authority", resp.Ns, []string{"example.com. 60 IN SOA ns.example.com. hostmaster.example.com. 0 7200 3600 86400 60"})
	})

	t.Run("upstream SERVFAIL relayed", func(t *testing.T) {
		req := query("other.example.com.", dns.TypeA)
		checkForwarded(t, req, exchange(t, "tcp", ts.tcpAddr, req), dns.RcodeServerFailure)
	})

	t.Run("EDNS0 answered with EDNS0, DO passed on", func(t *testing.T) {
		req := query("example.com.", dns.TypeA)
		req.SetEdns0(1232, true)
		before := len(up.seen())
		resp := exchange(t, "udp", ts.udpAddr, req)
		checkForwarded(t, req, resp, dns.RcodeSuccess)
		opts := 0
		for _, rr := range resp.Extra {
			if rr.Header().Rrtype == dns.TypeOPT {
				opts++
			}
		}
		opt := resp.IsEdns0()
		if opts != 1 || opt.UDPSize() != 4096 || !opt.Do() {
			t.Errorf("reply has %d OPT records, %v; want one, size 4096, DO", opts, opt)
		}
		if seen := up.seen()[before:]; len(seen) != 1 || !seen[0].do || seen[0].udpSize != 4096 {
			t.Errorf("upstream saw %+v, want DO and size 4096", seen)
		}
	})

	t.Run("truncated upstream reply retried over TCP", func(t *testing.T) {
		req := query("trunc.example.com.", dns.TypeA)
		before := len(up.seen())
		resp := exchange(t, "udp", ts.udpAddr, req)
		checkForwarded(t, req, resp, dns.RcodeSuccess)
		if resp.Truncated || len(resp.Answer) != 3 {
			t.Errorf("TC %v with %d answers, want the 3 of the TCP reply", resp.Truncated, len(resp.Answer))
		}
		var networks []string
		for _, q := range up.seen()[before:] {
			networks = append(networks, q.network)
		}
		if strings.Join(networks, ",") != "udp,tcp" {
			t.Errorf("upstream saw queries over %v, want udp then tcp", networks)
		}
	})

	t.Run("reply fitted to the client", func(t *testing.T) {
		req := query("big.example.com.", dns.TypeA)
		resp, size := exchangeRaw(t, ts.udpAddr, req)
		checkForwarded(t, req, resp, dns.RcodeSuccess)
		if size > 512 || !resp.Truncated || len(resp.Answer) == 0 || len(resp.Answer) >= 100 {
			t.Errorf("UDP without EDNS0: %d bytes, TC %v, %d answers; want ≤512, TC, some", size, resp.Truncated, len(resp.Answer))
		}
		req.SetEdns0(4096, false)
		resp, _ = exchangeRaw(t, ts.udpAddr, req)
		if resp.Truncated || len(resp.Answer) != 100 {
			t.Errorf("UDP with EDNS0 4096: TC %v, %d answers; want all 100", resp.Truncated, len(resp.Answer))
		}
		resp = exchange(t, "tcp", ts.tcpAddr, query("big.example.com.", dns.TypeA))
		if resp.Truncated || len(resp.Answer) != 100 {
			t.Errorf("TCP: TC %v, %d answers; want all 100", resp.Truncated, len(resp.Answer))
		}
	})

	t.Run("extended rcode needs EDNS0", func(t *testing.T) {
		req := query("cookie.example.com.", dns.TypeA)
		checkForwarded(t, req, exchange(t, "udp", ts.udpAddr, req), dns.RcodeServerFailure)
		req.SetEdns0(1232, false)
		checkForwarded(t, req, exchange(t, "udp", ts.udpAddr, req), dns.RcodeBadCookie)
	})

	t.Run("reply to another question is no answer", func(t *testing.T) {
		req := query("mismatch.example.com.", dns.TypeA)
		resp := exchange(t, "udp", ts.udpAddr, req)
		checkForwarded(t, req, resp, dns.RcodeServerFailure)
		checkRRs(t, "answer", resp.Answer, nil)
	})

	t.Run("PTR miss forwarded", func(t *testing.T) {
		req := query("99.99.99.10.in-addr.arpa.", dns.TypePTR)
		resp := exchange(t, "udp", ts.udpAddr, req)
		checkForwarded(t, req, resp, dns.RcodeSuccess)
		checkRRs(t, "answer", resp.Answer, []string{"99.99.99.10.in-addr.arpa. 300 IN PTR upstream.example."})
	})

	t.Run("PTR hit answered here", func(t *testing.T) {
		before := len(up.seen())
		resp := exchange(t, "udp", ts.udpAddr, query("2.0.1.10.in-addr.arpa.", dns.TypePTR))
		if !resp.Authoritative || !resp.RecursionAvailable || len(resp.Answer) != 1 {
			t.Errorf("AA %v RA %v, %d answers; want ours: AA, RA, one", resp.Authoritative, resp.RecursionAvailable, len(resp.Answer))
		}
		if n := len(up.seen()) - before; n != 0 {
			t.Errorf("upstream asked %d times", n)
		}
	})
}

// TestRecursorsAuthoritative checks our own answers with recursors
// configured: authoritative, with RA, never forwarded.
func TestRecursorsAuthoritative(t *testing.T) {
	up := startUpstream(t)
	withUp := func(c *meshdns.Config) { c.Recursors = []string{up.addr} }
	runAnswerCases(t, []answerCase{
		{
			name: "service", cfg: withUp, qname: "v1.web.service.consul.", qtype: dns.TypeA,
			answer: []string{"v1.web.service.consul. 5 IN A 10.0.0.1", "v1.web.service.consul. 5 IN A 10.0.0.4"},
		},
		{
			name: "NXDOMAIN in the domain", cfg: withUp, qname: "nope.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{consulSOA},
		},
		{
			name: "zone transfer refused", cfg: withUp, qname: "example.com.", qtype: dns.TypeAXFR,
			rcode: dns.RcodeRefused,
		},
	})
	if n := len(up.seen()); n != 0 {
		t.Errorf("upstream asked %d times", n)
	}
}

func TestRecursorFailover(t *testing.T) {
	up := startUpstream(t)
	closed, silent := deadRecursors(t)
	tests := []struct {
		name      string
		recursors []string
		rcode     int
	}{
		{name: "closed port, then live", recursors: []string{closed, up.addr}, rcode: dns.RcodeSuccess},
		{name: "silent, then live", recursors: []string{silent, up.addr}, rcode: dns.RcodeSuccess},
		{name: "all dead", recursors: []string{closed, silent}, rcode: dns.RcodeServerFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Long enough for a live loopback recursor on a loaded
			// machine, short enough to wait for a silent one.
			ts := recursorServer(t, time.Second, tc.recursors...)
			for _, network := range []string{"udp", "tcp"} {
				req := query("example.com.", dns.TypeA)
				resp := exchange(t, network, ts.addr(network), req)
				checkForwarded(t, req, resp, tc.rcode)
				want := []string{"example.com. 300 IN A 192.0.2.1"}
				if tc.rcode != dns.RcodeSuccess {
					want = nil
				}
				checkRRs(t, network+" answer", resp.Answer, want)
			}
		})
	}

	t.Run("no recursors refused", func(t *testing.T) {
		ts := startServer(t, meshdns.DefaultConfig(), newFixture())
		resp := exchange(t, "udp", ts.udpAddr, query("example.com.", dns.TypeA))
		if resp.Rcode != dns.RcodeRefused || resp.RecursionAvailable || resp.Authoritative {
			t.Errorf("rcode %s RA %v AA %v, want REFUSED, no RA, no AA", dns.RcodeToString[resp.Rcode], resp.RecursionAvailable, resp.Authoritative)
		}
	})
}

// TestRecursorHonoursContext checks that forwarding stops when the
// context ends, rather than waiting out a long RecursorTimeout.
func TestRecursorHonoursContext(t *testing.T) {
	_, silent := deadRecursors(t)
	cfg := meshdns.DefaultConfig()
	cfg.Recursors = []string{silent}
	cfg.RecursorTimeout = time.Minute
	cfg.Logger = testLogger(t)
	srv, err := meshdns.New(cfg, newFixture())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp := srv.Handle(ctx, query("example.com.", dns.TypeA), "udp")
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Handle took %v after its context ended", took)
	}
	if resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
	// The socket deadline is the context's: Handle returns at it, maybe
	// a moment before the context's own timer marks it done.
	if deadline, _ := ctx.Deadline(); time.Now().Before(deadline) {
		t.Errorf("Handle returned after %v, before its context ended", time.Since(start))
	}
}
