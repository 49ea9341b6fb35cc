package consensus

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/testkit"
)

type testNode struct {
	s     *Server
	store *catalog.Store
	id    string
	addr  string
}

// newNode starts a server that has not bootstrapped.
func newNode(t *testing.T, i int) *testNode {
	t.Helper()
	return newNodeWith(t, i, func(*Config) {})
}

// newNodeWith is newNode with edit applied to its config last.
func newNodeWith(t *testing.T, i int, edit func(*Config)) *testNode {
	t.Helper()
	store := catalog.NewStore()
	id := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
	s := launch(t, store, func(c *Config) {
		c.NodeID, c.DataDir = id, t.TempDir()
		c.Raft = LANRaftConfig(5) // loose: -race on a loaded 2-core machine
		edit(c)
	})
	return &testNode{s: s, store: store, id: id, addr: s.cfg.Advertise.String()}
}

func leaderOf(nodes []*testNode) *testNode {
	for _, n := range nodes {
		if n.s.IsLeader() {
			return n
		}
	}
	return nil
}

func TestClusterBootstrapReplicateFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	var nodes []*testNode
	var infos []ServerInfo
	for i := range 3 {
		n := newNode(t, i)
		nodes = append(nodes, n)
		infos = append(infos, ServerInfo{ID: n.id, Address: n.addr})
	}
	// Every server bootstraps with the same set, as -bootstrap-expect does.
	for _, n := range nodes {
		if err := n.s.BootstrapWith(infos); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[0].s.BootstrapWith(infos); err != ErrExistingState {
		t.Fatalf("second bootstrap = %v, want ErrExistingState", err)
	}
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(nodes) != nil })
	leader := leaderOf(nodes)
	for i := range 20 {
		req := &catalog.RegisterRequest{Node: "n", Address: "10.0.0.1", Service: &catalog.Service{ID: fmt.Sprint(i), Service: "web"}}
		if _, err := leader.s.Apply(context.Background(), RegisterType, req); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		testkit.Eventually(t, 10*time.Second, "replication to "+n.id, func() bool {
			_, got, _ := n.store.ServiceNodes(nil, "web", nil)
			return len(got) == 20
		})
	}
	// A follower refuses writes: they must go to the leader.
	for _, n := range nodes {
		if n != leader {
			if _, err := n.s.Apply(context.Background(), RegisterType, &catalog.RegisterRequest{Node: "x"}); err == nil {
				t.Fatal("a follower applied a write")
			}
			break
		}
	}

	// Kill the leader without a word: a new one is elected, and every
	// server's leader epoch (which forwarded calls are abandoned on) ends.
	epochs := map[*testNode]context.Context{}
	for _, n := range nodes {
		epochs[n] = n.s.LeaderEpoch()
	}
	start := time.Now()
	leader.s.Shutdown(context.Background())
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	testkit.Eventually(t, 30*time.Second, "a new leader", func() bool { return leaderOf(rest) != nil })
	t.Logf("new leader after %v (raft_multiplier 5)", time.Since(start))
	newLeader := leaderOf(rest)
	for n, epoch := range epochs {
		if epoch.Err() == nil {
			t.Errorf("%s: the leader epoch did not end when the leader was killed", n.id)
		}
	}

	// A new server joins as a non-voter, catches up, and is promoted.
	n4 := newNode(t, 4)
	if err := newLeader.s.AddNonvoter(n4.id, n4.addr); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the new server to catch up", func() bool {
		return n4.s.AppliedIndex() >= newLeader.s.AppliedIndex() && n4.s.AppliedIndex() > 0
	})
	if err := newLeader.s.Promote(n4.id, n4.addr); err != nil {
		t.Fatal(err)
	}
	// The dead server is removed; the configuration is the three live ones.
	if err := newLeader.s.RemoveServer(leader.id); err != nil {
		t.Fatal(err)
	}
	conf, _, err := newLeader.s.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, c := range conf {
		if c.Voter {
			voters++
		}
		if c.ID == leader.id {
			t.Fatal("the removed server is still in the configuration")
		}
	}
	if voters != 3 {
		t.Fatalf("configuration = %+v, want 3 voters", conf)
	}
	if _, got, _ := n4.store.ServiceNodes(nil, "web", nil); len(got) != 20 {
		t.Fatalf("the new server has %d instances, want 20", len(got))
	}
}

// TestNewLeaderNotReadyUntilEarlierTermsApplied: a server that wins an
// election while its catalog lags (here its FSM is held inside an entry of
// the previous term) leads at once, but LeaderReady, which gates every
// read a leader answers, stays false until the barrier of its term has
// been applied, and so every entry committed before it.
func TestNewLeaderNotReadyUntilEarlierTermsApplied(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	gate := make(chan struct{})
	var held atomic.Bool // set: the next command the gated FSM applies holds it
	var nodes []*testNode
	var infos []ServerInfo
	for i := range 3 {
		n := newNodeWith(t, i, func(c *Config) {
			if i == 1 {
				c.ObserveFSM = func(MessageType, time.Duration) {
					if held.CompareAndSwap(true, false) {
						<-gate
					}
				}
			}
		})
		nodes = append(nodes, n)
		infos = append(infos, ServerInfo{ID: n.id, Address: n.addr})
	}
	for _, n := range nodes {
		if err := n.s.BootstrapWith(infos); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(nodes) != nil })
	leader, lagging := leaderOf(nodes), nodes[1]
	if leader == lagging {
		if err := leader.s.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 30*time.Second, "another leader", func() bool { l := leaderOf(nodes); return l != nil && l != lagging })
		leader = leaderOf(nodes)
	}
	register := func(node string) {
		t.Helper()
		if _, err := leader.s.Apply(context.Background(), RegisterType, &catalog.RegisterRequest{Node: node, Address: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	held.Store(true)
	register("first") // the lagging server's FSM holds after applying it
	testkit.Eventually(t, 10*time.Second, "the lagging FSM to hold", func() bool { return !held.Load() })
	register("second") // committed by the other two; in the lagging log, not applied
	testkit.Eventually(t, 10*time.Second, "the second entry in the lagging log", func() bool {
		return lagging.s.LastIndex() >= leader.s.LastIndex()
	})

	if err := leader.s.raft.LeadershipTransferToServer(raft.ServerID(lagging.id), raft.ServerAddress(lagging.addr)).Error(); err != nil {
		close(gate)
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the lagging server to lead", lagging.s.IsLeader)
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		if lagging.s.LeaderReady() {
			close(gate)
			t.Fatal("a leader whose catalog lacks an entry of the previous term is ready for reads")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, n, _, _ := lagging.store.NodeServices(nil, "second"); n != nil {
		t.Fatal("the held FSM applied the second entry")
	}
	close(gate)
	testkit.Eventually(t, 30*time.Second, "the new leader to be ready", lagging.s.LeaderReady)
	if _, n, _, _ := lagging.store.NodeServices(nil, "second"); n == nil {
		t.Fatal("ready without the second entry")
	}
}
