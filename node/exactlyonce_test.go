package node_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// registerV is a catalog write of the external instance db-1 with
// Meta["v"] = v, under identity id.
func registerV(id catalog.WriteID, v string) *catalog.RegisterRequest {
	return &catalog.RegisterRequest{Node: "ext1", Address: "10.9.9.9",
		Service:      &catalog.Service{ID: "db-1", Service: "db", Port: 5432, Meta: map[string]string{"v": v}},
		WriteRequest: catalog.WriteRequest{WriteID: id}}
}

// dbVersion reads db-1's Meta["v"] from server a with a consistent read.
func dbVersion(t *testing.T, pool *rpc.Pool, addr string) (string, error) {
	t.Helper()
	var out rpc.ServiceNodesResponse
	q := &rpc.ServiceQuery{Service: "db", QueryOptions: rpc.QueryOptions{RequireConsistent: true}}
	if err := pool.Call(t.Context(), addr, "Catalog.ServiceNodes", q, &out); err != nil {
		return "", err
	}
	if len(out.Nodes) != 1 {
		return "", nil
	}
	return out.Nodes[0].Service.Meta["v"], nil
}

// TestWriteAppliedOnceAcrossLeaderChange: a copy of an acknowledged write
// (what a retry or a forward re-sent to a new leader is) that reaches the
// cluster after a newer write, and after the leader that applied it was
// killed, changes nothing and answers the first application's index: the
// identity is remembered by every server, not only by the leader.
func TestWriteAppliedOnceAcrossLeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster with a killed leader")
	}
	servers := nodetest.StartCluster(t, 3, 0)
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	pool := rpc.NewPool(5*time.Second, rpc.Hello{Node: "test-client"}, server.Codes)
	defer pool.Close()

	write := func(addr string, req *catalog.RegisterRequest) uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var reply rpc.WriteResponse
		if err := pool.Call(ctx, addr, "Catalog.Register", req, &reply); err != nil {
			t.Fatalf("register v=%s through %s: %v", req.Service.Meta["v"], addr, err)
		}
		return reply.Index
	}
	var follower *nodetest.Agent
	for _, s := range servers {
		if !s.IsLeader() {
			follower = s
		}
	}
	old := catalog.NewWriteID()
	first := write(follower.ServerAddr(), registerV(old, "old"))
	write(follower.ServerAddr(), registerV(catalog.NewWriteID(), "new"))

	// Kill the leader, which applied both.
	leader := leaderOf(servers)
	rest := stopAgent(t, leader, servers)
	testkit.Eventually(t, 30*time.Second, "a new leader", func() bool { return leaderOf(rest) != nil })

	// The copy of the old write, through each survivor.
	for _, s := range rest {
		if idx := write(s.ServerAddr(), registerV(old, "old")); idx != first {
			t.Errorf("the copy through %s answered index %d, want the first application's %d", s.ServerAddr(), idx, first)
		}
	}
	for _, s := range rest {
		v, err := dbVersion(t, pool, s.ServerAddr())
		if err != nil || v != "new" {
			t.Fatalf("consistent read through %s: v=%q (%v), want \"new\": an old write was applied over a newer one", s.ServerAddr(), v, err)
		}
	}
	// A write with a new identity and the same content is a new write.
	if idx := write(rest[0].ServerAddr(), registerV(catalog.NewWriteID(), "old")); idx <= first {
		t.Fatalf("a new write answered index %d", idx)
	}
	if v, _ := dbVersion(t, pool, rest[0].ServerAddr()); v != "old" {
		t.Fatalf("after a new write of \"old\": v=%q", v)
	}
}

// TestNewLeaderServesNoReadBeforeItsBarrier: a server elected while its
// catalog lags behind what the previous leader committed (here both
// followers' FSMs are held inside an earlier entry) answers no default
// read until it has applied everything committed before its term: the
// read waits, and returns what the previous leader acknowledged.
func TestNewLeaderServesNoReadBeforeItsBarrier(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster with a killed leader")
	}
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	defer release()
	holds := make([]*atomic.Bool, 3)
	var servers []*nodetest.Agent
	var join []string
	for i := range 3 {
		held := new(atomic.Bool) // set: the next command applied holds the FSM
		holds[i] = held
		a := nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: fmt.Sprintf("server%d", i+1), BootstrapExpect: 3, Join: join,
			Consensus: func(c *consensus.Config) {
				observe := c.ObserveFSM
				c.ObserveFSM = func(mt consensus.MessageType, took time.Duration) {
					observe(mt, took)
					if held.CompareAndSwap(true, false) {
						<-gate
					}
				}
			}})
		if join == nil {
			join = []string{a.GossipAddr()}
		}
		servers = append(servers, a)
	}
	testkit.Eventually(t, 60*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	leader := leaderOf(servers)
	testkit.Eventually(t, 30*time.Second, "the servers' nodes in the catalog", func() bool {
		code, body := do(t, "GET", leader.HTTP+"/v1/catalog/nodes", "")
		return code == 200 && strings.Count(body, `"Node":"server`) == 3
	})
	register := func(node string) {
		t.Helper()
		if code, body := do(t, "PUT", leader.HTTP+"/v1/catalog/register", `{"Node":"`+node+`","Address":"10.0.0.9"}`); code != 200 {
			t.Fatalf("register %s: %d %s", node, code, body)
		}
	}
	var rest []*nodetest.Agent
	for i, s := range servers {
		if s != leader {
			holds[i].Store(true)
			rest = append(rest, s)
		}
	}
	register("first") // both followers' FSMs hold after applying it
	testkit.Eventually(t, 10*time.Second, "both followers to hold", func() bool {
		for i, s := range servers {
			if s != leader && holds[i].Load() {
				return false
			}
		}
		return true
	})
	register("second") // acknowledged: in every log, applied by the leader only
	stopAgent(t, leader, servers)
	testkit.Eventually(t, 30*time.Second, "a new leader", func() bool { return leaderOf(rest) != nil })
	newLeader := leaderOf(rest)

	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	start := time.Now()
	go func() {
		code, body := do(t, "GET", newLeader.HTTP+"/v1/catalog/nodes", "")
		got <- answer{code, body}
	}()
	select {
	case a := <-got:
		release()
		t.Fatalf("the new leader answered a default read after %v with its FSM behind: %d %s", time.Since(start), a.code, a.body)
	case <-time.After(500 * time.Millisecond):
	}
	release()
	a := <-got
	if a.code != 200 || !strings.Contains(a.body, `"Node":"second"`) {
		t.Fatalf("after the barrier: %d %s, want the acknowledged node \"second\"", a.code, a.body)
	}
	t.Logf("the read waited %v for the new leader's barrier", time.Since(start))
}
