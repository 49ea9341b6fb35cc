package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// Bounds for waits in these tests. They are loose on purpose: the suite
// must pass under -race on a loaded 2-core machine. Measured figures are
// logged.
const (
	convergeTimeout = 20 * time.Second
	stopTimeout     = 15 * time.Second
)

// testWriter sends log lines to t.Log until the test's cleanups reach it;
// serf's and memberlist's goroutines can outlive Shutdown by a moment,
// and t.Log after the test ends panics.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// testLogger logs to t at Info and above. Call it before registering the
// cleanups of whatever uses it, so it is stopped after them.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// eventLog records the events a pool hands to its EventHandler.
type eventLog struct {
	mu     sync.Mutex
	events []timedEvent
}

type timedEvent struct {
	at time.Time
	Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, timedEvent{at: time.Now(), Event: e})
}

func (l *eventLog) all() []timedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// find returns the first recorded event of type typ about member name.
func (l *eventLog) find(typ EventType, name string) (timedEvent, bool) {
	for _, e := range l.all() {
		if e.Type != typ {
			continue
		}
		for _, m := range e.Members {
			if m.Name == name {
				return e, true
			}
		}
	}
	return timedEvent{}, false
}

// waitEvent polls until an event of type typ about name was recorded.
func (l *eventLog) waitEvent(t testing.TB, typ EventType, name string, timeout time.Duration) timedEvent {
	t.Helper()
	var got timedEvent
	testkit.Eventually(t, timeout, fmt.Sprintf("%v event for %s", typ, name), func() bool {
		var ok bool
		got, ok = l.find(typ, name)
		return ok
	})
	return got
}

// testNode is a started pool with its recorded events.
type testNode struct {
	*Pool
	cfg    Config
	events *eventLog
}

// startNode starts a pool named name with TestConfig, changed by opts, and
// shuts it down when the test ends.
func startNode(t testing.TB, name string, opts ...func(*Config)) *testNode {
	t.Helper()
	cfg := TestConfig()
	cfg.NodeName = name
	cfg.Logger = testLogger(t).With("node", name)
	events := &eventLog{}
	cfg.EventHandler = events.add
	for _, o := range opts {
		o(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start(%s): %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown(%s): %v", name, err)
		}
	})
	return &testNode{Pool: p, cfg: cfg, events: events}
}

// joinAddr is the "host:port" others join n at.
func (n *testNode) joinAddr() string {
	host, port := n.Addr()
	return net.JoinHostPort(host, fmt.Sprint(port))
}

// member returns n's view of the named member.
func (n *testNode) member(name string) (Member, bool) {
	for _, m := range n.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// waitStatus polls until n sees member name with status st.
func (n *testNode) waitStatus(t testing.TB, name string, st MemberStatus, timeout time.Duration) {
	t.Helper()
	testkit.Eventually(t, timeout, fmt.Sprintf("%s to see %s %s", n.cfg.NodeName, name, st), func() bool {
		m, ok := n.member(name)
		return ok && m.Status == st
	})
}

// waitAlive polls until every node sees every node alive.
func waitAlive(t testing.TB, nodes ...*testNode) {
	t.Helper()
	for _, n := range nodes {
		for _, other := range nodes {
			n.waitStatus(t, other.cfg.NodeName, StatusAlive, convergeTimeout)
		}
	}
}

// cluster starts one node per name and joins the others to the first.
func cluster(t testing.TB, names []string, opts map[string]func(*Config)) []*testNode {
	t.Helper()
	var nodes []*testNode
	for _, name := range names {
		var o []func(*Config)
		if f := opts[name]; f != nil {
			o = append(o, f)
		}
		nodes = append(nodes, startNode(t, name, o...))
	}
	for _, n := range nodes[1:] {
		if k, err := n.Join([]string{nodes[0].joinAddr()}); err != nil || k != 1 {
			t.Fatalf("%s joins %s: %d, %v", n.cfg.NodeName, nodes[0].cfg.NodeName, k, err)
		}
	}
	waitAlive(t, nodes...)
	return nodes
}

// freePort returns a port that was free for TCP and UDP on 127.0.0.1 a
// moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}
