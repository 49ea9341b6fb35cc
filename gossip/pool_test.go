package gossip

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

func serverTags(dc string, port, expect int) func(*Config) {
	return func(c *Config) {
		c.Tags = Tags{Role: RoleServer, Datacenter: dc, NodeID: "id-" + c.NodeName,
			ServerPort: port, BootstrapExpect: expect, Build: "0.1.0"}
	}
}

func TestJoinThree(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	opts := map[string]func(*Config){
		"s1": serverTags("dc1", 8300, 3),
		"c1": func(c *Config) {
			c.Tags = Tags{Role: RoleClient, Datacenter: "dc1", NodeID: "id-c1", Build: "0.1.0-dev"}
		},
	}
	start := time.Now()
	nodes := cluster(t, []string{"s1", "c1", "c2"}, opts)
	t.Logf("3 pools converged in %v", time.Since(start).Round(time.Millisecond))

	for _, n := range nodes {
		ms := n.Members()
		if len(ms) != 3 || n.NumMembers() != 3 {
			t.Fatalf("%s: %d members (NumMembers %d), want 3: %+v", n.cfg.NodeName, len(ms), n.NumMembers(), ms)
		}
		for i, want := range []string{"c1", "c2", "s1"} { // sorted by name
			m := ms[i]
			if m.Name != want {
				t.Errorf("%s: member %d is %s, want %s", n.cfg.NodeName, i, m.Name, want)
				continue
			}
			if m.Status != StatusAlive {
				t.Errorf("%s sees %s %s", n.cfg.NodeName, m.Name, m.Status)
			}
			var peer *testNode
			for _, p := range nodes {
				if p.cfg.NodeName == m.Name {
					peer = p
				}
			}
			if m.Tags != peer.cfg.Tags {
				t.Errorf("%s sees %s with tags %+v, want %+v", n.cfg.NodeName, m.Name, m.Tags, peer.cfg.Tags)
			}
			if m.RawTags[TagVersion] != TagsVersion {
				t.Errorf("%s: raw tags %v lack vsn", m.Name, m.RawTags)
			}
			host, port := peer.Addr()
			if m.Addr != netip.MustParseAddr(host) || m.Port != port || host != "127.0.0.1" {
				t.Errorf("%s sees %s at %v:%d, want %s:%d", n.cfg.NodeName, m.Name, m.Addr, m.Port, host, port)
			}
		}
		if all := n.events.all(); len(all) == 0 || all[0].Type != MemberJoin || all[0].Members[0].Name != n.cfg.NodeName {
			t.Errorf("%s: first event is not its own join: %+v", n.cfg.NodeName, all)
		}
		if got := n.LocalMember(); got.Name != n.cfg.NodeName || got.Tags != n.cfg.Tags {
			t.Errorf("LocalMember() = %+v, want %s with %+v", got, n.cfg.NodeName, n.cfg.Tags)
		}
		// Every pool hears of the other two joining.
		for _, other := range nodes {
			if other == n {
				continue
			}
			e := n.events.waitEvent(t, MemberJoin, other.cfg.NodeName, convergeTimeout)
			for _, m := range e.Members {
				if m.Name == other.cfg.NodeName && m.Tags != other.cfg.Tags {
					t.Errorf("join event for %s carries tags %+v", m.Name, m.Tags)
				}
			}
		}
	}

	// Only s1 is a server.
	c2 := nodes[2]
	servers := c2.Servers("")
	if len(servers) != 1 || servers[0].Name != "s1" || !servers[0].IsServer() {
		t.Fatalf("Servers(\"\") = %+v, want s1", servers)
	}
	srv, ok := ServerFromMember(servers[0])
	want := Server{Name: "s1", ID: "id-s1", Datacenter: "dc1", Addr: netip.MustParseAddrPort("127.0.0.1:8300"),
		Expect: 3, Build: "0.1.0", Status: StatusAlive}
	if !ok || srv != want {
		t.Errorf("ServerFromMember = %+v, %v; want %+v", srv, ok, want)
	}
	if got := c2.Servers("dc2"); len(got) != 0 {
		t.Errorf("Servers(dc2) = %+v, want none", got)
	}

	// Coordinates come with probe acks.
	testkit.Eventually(t, convergeTimeout, "an RTT estimate", func() bool {
		_, ok := c2.RTT("c2", "s1")
		return ok
	})
	rtt, _ := c2.RTT("c2", "s1")
	t.Logf("estimated RTT c2-s1 on loopback: %v", rtt)
}

func TestLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	nodes := cluster(t, []string{"a", "b", "c"}, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	if err := c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	leaveTook := time.Since(start)
	if err := c.Leave(ctx); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if _, err := c.Join([]string{a.joinAddr()}); !errors.Is(err, ErrLeft) {
		t.Errorf("Join after Leave = %v, want ErrLeft", err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after Leave: %v", err)
	}

	for _, n := range []*testNode{a, b} {
		e := n.events.waitEvent(t, MemberLeave, "c", convergeTimeout)
		n.waitStatus(t, "c", StatusLeft, convergeTimeout)
		t.Logf("%s: MemberLeave for c %v after Leave began (Leave returned after %v)",
			n.cfg.NodeName, e.at.Sub(start).Round(time.Millisecond), leaveTook.Round(time.Millisecond))
	}
	// A graceful leave is never taken for a failure: memberlist's probes
	// of c could beat its leave, and then serf would report it failed.
	for _, n := range []*testNode{a, b} {
		if e, ok := n.events.find(MemberFailed, "c"); ok {
			t.Errorf("%s: c, which left, was reported failed: %+v", n.cfg.NodeName, e)
		}
	}
}

func TestFailureDetection(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	opts := map[string]func(*Config){
		"a": serverTags("dc1", 8300, 3),
		"c": serverTags("dc1", 8310, 3),
		"d": serverTags("dc2", 8320, 0),
	}
	nodes := cluster(t, []string{"a", "b", "c", "d"}, opts)
	a, b, c := nodes[0], nodes[1], nodes[2]
	if got := names(b.Servers("dc1")); !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Fatalf("Servers(dc1) = %v, want [a c]", got)
	}

	// c crashes: no Leave.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, n := range []*testNode{a, b, nodes[3]} {
		e := n.events.waitEvent(t, MemberFailed, "c", 15*time.Second)
		took := e.at.Sub(start)
		t.Logf("%s: c declared failed %v after it stopped (TestConfig: probe 100ms, suspicion 3 x 100ms)",
			n.cfg.NodeName, took.Round(time.Millisecond))
		if m, _ := n.member("c"); m.Status != StatusFailed {
			t.Errorf("%s sees c %s, want failed", n.cfg.NodeName, m.Status)
		}
		// Events come in order: c joined before it failed.
		if j, ok := n.events.find(MemberJoin, "c"); !ok || j.at.After(e.at) {
			t.Errorf("%s: join of c (found %v) not before its failure", n.cfg.NodeName, ok)
		}
	}

	// Servers filters on status, role and datacenter.
	for _, tc := range []struct {
		dc   string
		want []string
	}{{"dc1", []string{"a"}}, {"", []string{"a"}}, {"dc2", []string{"d"}}, {"dc3", nil}} {
		if got := names(b.Servers(tc.dc)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Servers(%q) = %v, want %v", tc.dc, got, tc.want)
		}
	}

	// ForceLeave turns the failed member into a left one, everywhere.
	if err := a.ForceLeave("nobody", false); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("ForceLeave(nobody) = %v, want ErrUnknownMember", err)
	}
	if err := a.ForceLeave("c", false); err != nil {
		t.Fatalf("ForceLeave: %v", err)
	}
	for _, n := range []*testNode{a, b} {
		n.events.waitEvent(t, MemberLeave, "c", convergeTimeout)
		n.waitStatus(t, "c", StatusLeft, convergeTimeout)
	}

	// Pruning forgets it at once.
	if err := a.ForceLeave("c", true); err != nil {
		t.Fatalf("ForceLeave prune: %v", err)
	}
	a.events.waitEvent(t, MemberReap, "c", convergeTimeout)
	testkit.Eventually(t, convergeTimeout, "c to be forgotten", func() bool {
		_, ok := a.member("c")
		return !ok && a.NumMembers() == 3
	})
}

func names(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestSetTags(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	nodes := cluster(t, []string{"a", "b"}, nil)
	a, b := nodes[0], nodes[1]

	if err := a.SetTags(Tags{Role: "boss", Datacenter: "dc1"}); !errors.Is(err, ErrInvalidTags) {
		t.Errorf("SetTags(bad role) = %v, want ErrInvalidTags", err)
	}
	newTags := Tags{Role: RoleServer, Datacenter: "dc1", NodeID: "id-a", ServerPort: 8300, BootstrapExpect: 1, Build: "0.2.0"}
	start := time.Now()
	if err := a.SetTags(newTags); err != nil {
		t.Fatalf("SetTags: %v", err)
	}
	e := b.events.waitEvent(t, MemberUpdate, "a", convergeTimeout)
	t.Logf("b got the update %v after SetTags began", e.at.Sub(start).Round(time.Millisecond))
	if len(e.Members) != 1 || e.Members[0].Tags != newTags {
		t.Errorf("update event %+v, want a with %+v", e.Members, newTags)
	}
	if m, _ := b.member("a"); m.Tags != newTags || !m.IsServer() {
		t.Errorf("b sees a with %+v", m.Tags)
	}
	if got := names(b.Servers("dc1")); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("Servers after promotion = %v", got)
	}
	if got := a.LocalMember().Tags; got != newTags {
		t.Errorf("LocalMember tags %+v", got)
	}
}

func TestSnapshotRejoin(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	snap := filepath.Join(t.TempDir(), "serf-lan.snapshot")
	withSnap := func(c *Config) { c.SnapshotPath = snap }
	nodes := cluster(t, []string{"a", "b", "c"}, map[string]func(*Config){"c": withSnap})
	a, b, c := nodes[0], nodes[1], nodes[2]
	_, port := c.Addr()

	// c crashes, and is noticed.
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(t, "c", StatusFailed, convergeTimeout)

	// c comes back on its port with its snapshot, and no Join.
	start := time.Now()
	c2 := startNode(t, "c", withSnap, func(cfg *Config) { cfg.BindPort = port })
	waitAlive(t, a, b, c2)
	t.Logf("restarted c rejoined from its snapshot in %v", time.Since(start).Round(time.Millisecond))
	if _, ok := a.events.find(MemberJoin, "c"); !ok {
		t.Error("a got no join event")
	}
}

func TestLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	baseline := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()

	// Before Start.
	cfg := TestConfig()
	cfg.NodeName = "early"
	cfg.Logger = testLogger(t)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Join([]string{"127.0.0.1:1"}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Join before Start = %v", err)
	}
	if err := p.Leave(ctx); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Leave before Start = %v", err)
	}
	if p.Members() != nil || p.NumMembers() != 0 {
		t.Error("members before Start")
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown before Start = %v", err)
	}
	if err := p.Start(ctx); !errors.Is(err, ErrShutdown) {
		t.Errorf("Start after Shutdown = %v", err)
	}

	// A running pair; one leaves then shuts down, one just shuts down,
	// twice and concurrently.
	nodes := cluster(t, []string{"x", "y"}, nil)
	x, y := nodes[0], nodes[1]
	if err := x.Start(ctx); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("second Start = %v", err)
	}
	if err := x.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := x.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after Leave: %v", err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := y.Shutdown(ctx); err != nil {
				t.Errorf("concurrent Shutdown: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := y.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown again: %v", err)
	}
	for _, n := range nodes {
		if _, err := n.Join([]string{"127.0.0.1:1"}); !errors.Is(err, ErrShutdown) {
			t.Errorf("Join after Shutdown = %v", err)
		}
		if err := n.SetTags(n.cfg.Tags); !errors.Is(err, ErrShutdown) {
			t.Errorf("SetTags after Shutdown = %v", err)
		}
		if err := n.Leave(ctx); !errors.Is(err, ErrShutdown) {
			t.Errorf("Leave after Shutdown = %v", err)
		}
		if err := n.ForceLeave("x", false); !errors.Is(err, ErrShutdown) {
			t.Errorf("ForceLeave after Shutdown = %v", err)
		}
		if len(n.Members()) == 0 {
			t.Error("Members after Shutdown should keep the last view")
		}
	}
	// The port is free again.
	_, port := y.Addr()
	startNode(t, "y2", func(c *Config) { c.BindPort = port }).Shutdown(ctx)

	// No goroutine outlives the pools: theirs, serf's and memberlist's
	// wind down shortly after Shutdown.
	start := time.Now()
	testkit.Eventually(t, stopTimeout, "goroutines to wind down", func() bool {
		return runtime.NumGoroutine() <= baseline+2
	})
	t.Logf("goroutines: %d before, %d after (settled in %v)", baseline, runtime.NumGoroutine(),
		time.Since(start).Round(time.Millisecond))
}

func TestLeaveContext(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	nodes := cluster(t, []string{"a", "b"}, func() map[string]func(*Config) {
		slow := func(c *Config) { c.LeavePropagateDelay = 2 * time.Second }
		return map[string]func(*Config){"b": slow}
	}())
	b := nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Leave(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Leave with a short ctx = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Leave returned %v after its ctx ended", took)
	}
	// The leave goes on: a hears of it while b waits out its delay.
	nodes[0].waitStatus(t, "b", StatusLeaving, convergeTimeout)
	// Shutdown waits for the leave still running.
	sctx, scancel := context.WithTimeout(context.Background(), stopTimeout)
	defer scancel()
	if err := b.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	if took < 2*time.Second {
		t.Errorf("Shutdown returned %v after Leave began, before the leave's 2s propagate delay", took)
	}
	t.Logf("Leave gave up at its 50ms ctx; Shutdown returned %v after Leave began (propagate delay 2s)", took.Round(time.Millisecond))
	nodes[0].waitStatus(t, "b", StatusLeft, convergeTimeout)
}
