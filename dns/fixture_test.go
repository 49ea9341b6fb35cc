package dns_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// errBroken is what the fixture's "broken" service and node fail with,
// and reverse lookups of brokenAddr.
var errBroken = errors.New("catalog unavailable")

// brokenAddr is the address whose reverse lookup fails.
var brokenAddr = netip.MustParseAddr("192.0.2.99")

// fakeResolver answers from fixed instances and nodes, keyed by
// "dc/lower-case name", and records the service lookups it gets.
type fakeResolver struct {
	services map[string][]catalog.CheckServiceNode
	nodes    map[string]*catalog.Node
	// ignoreTags returns instances whatever their tags, which the
	// Resolver contract allows.
	ignoreTags bool
	// reverse overrides ReverseLookup for its addresses; others are
	// found in services and nodes of dc1.
	reverse map[netip.Addr]meshdns.Reverse
	// nameServers is what NameServers returns, with nameServersErr.
	nameServers    []meshdns.NameServer
	nameServersErr error

	// lookupsMu guards lookups.
	lookupsMu sync.Mutex
	lookups   []meshdns.ServiceLookup
}

func (r *fakeResolver) ServiceInstances(_ context.Context, q meshdns.ServiceLookup) ([]catalog.CheckServiceNode, error) {
	r.lookupsMu.Lock()
	r.lookups = append(r.lookups, q)
	r.lookupsMu.Unlock()
	if q.Service == "broken" {
		return nil, errBroken
	}
	var out []catalog.CheckServiceNode
	for _, inst := range r.services[q.Datacenter+"/"+strings.ToLower(q.Service)] {
		if q.Tag == "" || r.ignoreTags || inst.Service.HasTag(q.Tag) {
			out = append(out, inst)
		}
	}
	return out, nil
}

func (r *fakeResolver) Node(_ context.Context, dc, name string) (*catalog.Node, error) {
	if name == "broken" {
		return nil, errBroken
	}
	return r.nodes[dc+"/"+strings.ToLower(name)], nil
}

// ReverseLookup finds the dc1 nodes with address ip, and the dc1 services
// with an instance whose own address is ip, each once.
func (r *fakeResolver) ReverseLookup(_ context.Context, ip netip.Addr) (meshdns.Reverse, error) {
	if ip == brokenAddr {
		return meshdns.Reverse{}, errBroken
	}
	if rev, ok := r.reverse[ip]; ok {
		return rev, nil
	}
	var rev meshdns.Reverse
	for key, node := range r.nodes {
		if strings.HasPrefix(key, "dc1/") && sameAddr(node.Address, ip) {
			rev.Nodes = append(rev.Nodes, node.Node)
		}
	}
	for key, insts := range r.services {
		if !strings.HasPrefix(key, "dc1/") {
			continue
		}
		for _, inst := range insts {
			if sameAddr(inst.Service.Address, ip) {
				rev.Services = append(rev.Services, inst.Service.Service)
				break
			}
		}
	}
	sort.Strings(rev.Nodes)
	sort.Strings(rev.Services)
	return rev, nil
}

func sameAddr(s string, ip netip.Addr) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a == ip
}

func (r *fakeResolver) NameServers(context.Context) ([]meshdns.NameServer, error) {
	return r.nameServers, r.nameServersErr
}

func (r *fakeResolver) seen() []meshdns.ServiceLookup {
	r.lookupsMu.Lock()
	defer r.lookupsMu.Unlock()
	return append([]meshdns.ServiceLookup(nil), r.lookups...)
}

// inst describes one service instance of the fixture.
type inst struct {
	node, nodeAddr string
	addr           string // the instance's own address
	port           int
	tags           []string
	weights        catalog.Weights
	status         catalog.HealthStatus // of the service check; "" = passing
	nodeStatus     catalog.HealthStatus // of serfHealth; "" = passing
	single         bool                 // Service.DNS.Single
}

func (i inst) build(dc, service string, n int) catalog.CheckServiceNode {
	node := &catalog.Node{Node: i.node, Address: i.nodeAddr, Datacenter: dc}
	id := fmt.Sprintf("%s-%d", service, n)
	svc := &catalog.Service{Node: i.node, ID: id, Service: service, Tags: i.tags,
		Address: i.addr, Port: i.port, Weights: i.weights, DNS: catalog.ServiceDNS{Single: i.single}}
	status := func(s catalog.HealthStatus) catalog.HealthStatus {
		if s == "" {
			return catalog.HealthPassing
		}
		return s
	}
	return catalog.CheckServiceNode{Node: node, Service: svc, Checks: []*catalog.Check{
		{Node: i.node, CheckID: catalog.SerfCheckID, Status: status(i.nodeStatus)},
		{Node: i.node, CheckID: "service:" + id, ServiceID: id, Status: status(i.status)},
	}}
}

// fixtureNameServers are the fixture's name servers: unsorted, one with an
// invalid name, one with an IPv4-mapped address.
var fixtureNameServers = []meshdns.NameServer{
	{Node: "srv2", Address: netip.MustParseAddr("10.0.0.12")},
	{Node: "srv1", Address: netip.MustParseAddr("10.0.0.11")},
	{Node: "bad name", Address: netip.MustParseAddr("10.0.0.15")},
	{Node: "srv3", Address: netip.MustParseAddr("2001:db8::13")},
	{Node: "srv4", Address: netip.MustParseAddr("::ffff:10.0.0.14")},
}

// newFixture is the catalog most tests answer from.
func newFixture() *fakeResolver {
	r := &fakeResolver{services: map[string][]catalog.CheckServiceNode{}, nodes: map[string]*catalog.Node{},
		nameServers: fixtureNameServers}
	add := func(dc, service string, insts ...inst) {
		for n, i := range insts {
			csn := i.build(dc, service, n)
			r.services[dc+"/"+service] = append(r.services[dc+"/"+service], csn)
			r.nodes[dc+"/"+strings.ToLower(i.node)] = csn.Node
		}
	}
	add("dc1", "web",
		inst{node: "n1", nodeAddr: "10.0.0.1", port: 80, tags: []string{"v1", "primary"}, weights: catalog.Weights{Passing: 10, Warning: 1}},
		inst{node: "n2", nodeAddr: "10.0.0.2", addr: "10.1.0.2", port: 8080, tags: []string{"v2"}},
		inst{node: "n3", nodeAddr: "10.0.0.3", port: 80, tags: []string{"v1"}, status: catalog.HealthCritical},
		inst{node: "n4", nodeAddr: "10.0.0.4", port: 80, tags: []string{"V1"}, weights: catalog.Weights{Passing: 5, Warning: 2}, status: catalog.HealthWarning},
		inst{node: "n5", nodeAddr: "10.0.0.5", port: 80, tags: []string{"v1"}, nodeStatus: catalog.HealthCritical},
	)
	add("dc1", "v6", inst{node: "n6", nodeAddr: "2001:db8::6", port: 443})
	add("dc1", "dual",
		inst{node: "n1", nodeAddr: "10.0.0.1", port: 80},
		inst{node: "n6", nodeAddr: "2001:db8::6", port: 80},
	)
	add("dc1", "ext", inst{node: "n1", nodeAddr: "10.0.0.1", addr: "db.example.org", port: 5432})
	add("dc1", "same",
		inst{node: "n1", nodeAddr: "10.0.0.1", port: 81},
		inst{node: "n1", nodeAddr: "10.0.0.1", port: 82},
	)
	add("dc1", "down", inst{node: "n3", nodeAddr: "10.0.0.3", port: 80, status: catalog.HealthCritical})
	add("dc1", "warn", inst{node: "n4", nodeAddr: "10.0.0.4", port: 80, status: catalog.HealthWarning})
	add("dc1", "hostnode", inst{node: "h1", nodeAddr: "h1.example.org", port: 80})
	add("dc1", "big", manyInsts("big", 100, 2)...)
	add("dc1", "huge", manyInsts("huge", 300, 3)...)
	add("dc1", "many", manyInsts("many", 200, 6)...)
	// Reverse lookups: 10.0.0.1 is node n1 and the own address of "rev";
	// 2001:db8::60 is the own address of "api6" on n6.
	add("dc1", "rev", inst{node: "n1", nodeAddr: "10.0.0.1", addr: "10.0.0.1", port: 9000})
	add("dc1", "api6", inst{node: "n6", nodeAddr: "2001:db8::6", addr: "2001:db8::60", port: 9000})
	// Single answers. "lb": weights 1, 2, 3, a passing instance of weight
	// 0, and a heavy one without a usable address. "lbmix": a light IPv4
	// instance and a heavy IPv6 one. "pinned": DNS.Single on one instance.
	add("dc1", "lb",
		inst{node: "lb-1", nodeAddr: "10.5.0.1", port: 81, weights: catalog.Weights{Passing: 1, Warning: 1}},
		inst{node: "lb-2", nodeAddr: "10.5.0.2", port: 82, weights: catalog.Weights{Passing: 2, Warning: 1}},
		inst{node: "lb-3", nodeAddr: "10.5.0.3", port: 83, weights: catalog.Weights{Passing: 3, Warning: 1}},
		inst{node: "lb-zero", nodeAddr: "10.5.0.4", port: 84, weights: catalog.Weights{Passing: 0, Warning: 1}},
		inst{node: "lb-bad", nodeAddr: "10.5.0.5", addr: "not an address", port: 85, weights: catalog.Weights{Passing: 1000, Warning: 1}},
	)
	add("dc1", "lbmix",
		inst{node: "mix-4", nodeAddr: "10.5.1.4", port: 80, weights: catalog.Weights{Passing: 1, Warning: 1}},
		inst{node: "mix-6", nodeAddr: "2001:db8::5:6", port: 80, weights: catalog.Weights{Passing: 100, Warning: 1}},
	)
	add("dc1", "pinned",
		inst{node: "pin-1", nodeAddr: "10.5.2.1", port: 80},
		inst{node: "pin-2", nodeAddr: "10.5.2.2", port: 80, single: true},
		inst{node: "pin-3", nodeAddr: "10.5.2.3", port: 80},
	)
	add("dc1", "hostonly",
		inst{node: "ho-1", nodeAddr: "10.5.3.1", addr: "a.example.org", port: 80},
		inst{node: "ho-2", nodeAddr: "10.5.3.2", addr: "b.example.org", port: 80},
	)
	add("dc2", "db", inst{node: "d1", nodeAddr: "192.168.0.1", port: 5432})
	return r
}

// manyInsts is n instances on nodes <prefix>-000... with addresses 10.<b>.x.y.
func manyInsts(prefix string, n int, b int) []inst {
	insts := make([]inst, n)
	for i := range insts {
		insts[i] = inst{node: fmt.Sprintf("%s-%03d", prefix, i), nodeAddr: fmt.Sprintf("10.%d.%d.%d", b, i/256, i%256), port: 8000 + i}
	}
	return insts
}

// testServer is a Server on 127.0.0.1 serving UDP and TCP.
type testServer struct {
	*meshdns.Server
	udpAddr, tcpAddr string
}

func (ts *testServer) addr(network string) string {
	if network == "tcp" {
		return ts.tcpAddr
	}
	return ts.udpAddr
}

// testLogger sends logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer serves r on fresh loopback sockets until the test ends,
// then shuts down and checks both Serve calls returned nil. The sockets
// are bound before Serve runs, so queries sent at once just queue.
func startServer(t testing.TB, cfg meshdns.Config, r meshdns.Resolver) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv, err := meshdns.New(cfg, r)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		t.Fatalf("listen tcp: %v", err)
	}
	errCh := make(chan error, 2)
	go func() { errCh <- srv.ServeUDP(pc) }()
	go func() { errCh <- srv.ServeTCP(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for range 2 {
			select {
			case err := <-errCh:
				if err != nil {
					t.Errorf("Serve returned %v after Shutdown, want nil", err)
				}
			case <-ctx.Done():
				t.Fatalf("Serve did not return after Shutdown")
			}
		}
	})
	ts := &testServer{Server: srv, udpAddr: pc.LocalAddr().String(), tcpAddr: l.Addr().String()}
	// Hand the server over only once both Serve calls are running, so the
	// Shutdown at cleanup always finds them started (a Serve that starts
	// after Shutdown rightly returns ErrServerClosed).
	domain := cfg.Domain
	if domain == "" {
		domain = meshdns.DefaultConfig().Domain
	}
	for _, nw := range []struct{ name, addr string }{{"udp", ts.udpAddr}, {"tcp", ts.tcpAddr}} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(domain), dns.TypeSOA)
		c := &dns.Client{Net: nw.name, Timeout: time.Second}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, _, err := c.Exchange(m, nw.addr); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s listener never answered", nw.name)
			}
		}
	}
	return ts
}

// exchange sends one question over network and returns the reply.
func exchange(t *testing.T, network, addr string, req *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(req, addr)
	if err != nil {
		t.Fatalf("exchange over %s: %v", network, err)
	}
	return resp
}

// exchangeRaw sends req over UDP and returns the reply with its size on
// the wire, reading into a buffer large enough for any datagram so an
// oversized reply shows up as such rather than as a read error.
func exchangeRaw(t *testing.T, addr string, req *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	wire, err := req.Pack()
	if err != nil {
		t.Fatalf("pack query: %v", err)
	}
	if _, err := conn.Write(wire); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(buf[:n]); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	return resp, n
}

// checkRRs compares got with want (zone-file syntax) as sets: answers
// are shuffled. OPT records are left out of got and SOA serials zeroed,
// as the serial is the time.
func checkRRs(t *testing.T, section string, got []dns.RR, want []string) {
	t.Helper()
	var gotS, wantS []string
	for _, rr := range got {
		switch rr := rr.(type) {
		case *dns.OPT:
			continue
		case *dns.SOA:
			if rr.Serial == 0 {
				t.Errorf("%s: SOA serial is 0", section)
			}
			c := *rr
			c.Serial = 0
			gotS = append(gotS, c.String())
			continue
		}
		gotS = append(gotS, rr.String())
	}
	for _, s := range want {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad expected RR %q: %v", s, err)
		}
		wantS = append(wantS, rr.String())
	}
	sort.Strings(gotS)
	sort.Strings(wantS)
	if strings.Join(gotS, "\n") != strings.Join(wantS, "\n") {
		t.Errorf("%s section:\ngot:\n%s\nwant:\n%s", section, strings.Join(gotS, "\n"), strings.Join(wantS, "\n"))
	}
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}
