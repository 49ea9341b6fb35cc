package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/nodetest"
)

func raftVoters(t *testing.T, a *nodetest.Agent) (voters, nonvoters int) {
	t.Helper()
	code, body := do(t, "GET", a.HTTP+"/v1/operator/raft/configuration", "")
	var conf struct{ Servers []struct{ Voter bool } }
	if code != 200 || json.Unmarshal([]byte(body), &conf) != nil {
		return 0, 0
	}
	for _, s := range conf.Servers {
		if s.Voter {
			voters++
		} else {
			nonvoters++
		}
	}
	return voters, nonvoters
}

func nodeRegistered(t *testing.T, a *nodetest.Agent, name string) bool {
	t.Helper()
	code, body := do(t, "GET", a.HTTP+"/v1/catalog/node/"+name, "")
	return code == 200 && strings.TrimSpace(body) != "null"
}

func TestServersJoinAndLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("a growing and shrinking cluster")
	}
	agents := nodetest.StartCluster(t, 3, 1)
	servers, client := agents[:3], agents[3]
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })

	// A fourth server joins an existing cluster: it must not bootstrap a
	// second one; the leader adds it as a non-voter and promotes it once it
	// has caught up.
	s4 := nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: "server4", BootstrapExpect: 3,
		Join: []string{servers[0].GossipAddr()}})
	testkit.Eventually(t, 30*time.Second, "server4 promoted to voter", func() bool {
		v, nv := raftVoters(t, servers[0])
		return v == 4 && nv == 0
	})
	if s4.IsLeader() && leaderOf(servers) != nil {
		t.Fatal("two leaders: server4 started a cluster of its own")
	}

	// A client leaves gracefully: its node is deregistered everywhere.
	if !nodeRegistered(t, servers[1], "client1") {
		t.Fatal("client1 not registered")
	}
	if code, body := do(t, "PUT", client.HTTP+"/v1/agent/leave", ""); code != 200 {
		t.Fatalf("client leave: %d %s", code, body)
	}
	testkit.Eventually(t, 30*time.Second, "client1 deregistered", func() bool {
		return !nodeRegistered(t, servers[1], "client1")
	})

	// A server leaves gracefully (the leader, the hardest case): it leaves
	// Raft cleanly, a new leader takes over, and its node is deregistered.
	leader := leaderOf(append(servers, s4))
	if code, body := do(t, "PUT", leader.HTTP+"/v1/agent/leave", ""); code != 200 {
		t.Fatalf("server leave: %d %s", code, body)
	}
	rest := stopAgent(t, leader, append(servers, s4))
	testkit.Eventually(t, 30*time.Second, "3 voters after the leader left", func() bool {
		l := leaderOf(rest)
		if l == nil {
			return false
		}
		v, nv := raftVoters(t, l)
		return v == 3 && nv == 0
	})
	testkit.Eventually(t, 30*time.Second, "the departed server deregistered", func() bool {
		return !nodeRegistered(t, leaderOf(rest), leader.Config().NodeName)
	})
}

// A follower stopped and restarted from its data dir catches up on what it
// missed, over a log of more than 16,384 entries.
func TestRestartedServerCatchesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("writes more than 16,384 entries to a 3-server cluster")
	}
	_, leader, follower := threeServers(t, nodetest.Options{})
	write := func(from, to int) {
		t.Helper()
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		var failed atomic.Int64
		client := &http.Client{Timeout: 30 * time.Second}
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= to {
						return
					}
					if code, err := registerExt(client, leader.HTTP, fmt.Sprintf("i%d", i)); err != nil || code != 200 {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d writes failed", failed.Load())
		}
	}
	start := time.Now()
	write(0, 17000)
	t.Logf("17,000 registrations through the leader in %v", time.Since(start))

	dataDir, name := follower.Config().DataDir, follower.Config().NodeName
	if err := follower.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	write(17000, 17500) // while the follower is down
	back := nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: name, DataDir: dataDir, BootstrapExpect: 3,
		Join: []string{leader.GossipAddr()}})
	c := newClient(t, back)
	start = time.Now()
	testkit.Eventually(t, 60*time.Second, "the restarted follower to catch up", func() bool {
		entries, _, err := c.Catalog().Service("w", "", &api.QueryOptions{AllowStale: true})
		return err == nil && len(entries) == 17500
	})
	t.Logf("restarted follower caught up in %v", time.Since(start))
}

// A failed server loses its vote after the grace period, which keeps the
// cluster able to lose another one.
func TestFailedServerRemovedAfterGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	_, leader, victim := threeServers(t, nodetest.Options{ServerFailGrace: time.Second})
	start := time.Now()
	victim.Shutdown(t.Context()) // no leave: gossip declares it failed
	testkit.Eventually(t, 30*time.Second, "the failed server removed from Raft", func() bool {
		v, nv := raftVoters(t, leader)
		return v == 2 && nv == 0
	})
	took := time.Since(start)
	t.Logf("failed server removed %v after it stopped (grace 1s)", took)
	if took > 10*time.Second {
		t.Fatalf("removal took %v: the grace is checked too late", took)
	}
	// Its node stays, critical, until reconnect_timeout.
	if !nodeRegistered(t, leader, victim.Config().NodeName) {
		t.Fatal("a failed server's node was deregistered before reconnect_timeout")
	}
}

// A server that lost its data dir rejoins at its address under a new ID:
// its old Raft entry is replaced, not left to count against the quorum.
func TestServerRejoinsWithNewIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	_, leader, victim := threeServers(t, nodetest.Options{})
	name := victim.Config().NodeName
	oldID := agentNodeID(t, victim)
	_, port, _ := strings.Cut(victim.ServerAddr(), ":")
	victim.Shutdown(t.Context())
	// Gossip must see the old one gone before a new one can take its name.
	testkit.Eventually(t, 30*time.Second, name+" failed", func() bool {
		code, body := do(t, "GET", leader.HTTP+"/v1/agent/members", "")
		var ms []struct {
			Name   string
			Status int
		}
		if code != 200 || json.Unmarshal([]byte(body), &ms) != nil {
			return false
		}
		for _, m := range ms {
			if m.Name == name {
				return m.Status == 4
			}
		}
		return false
	})
	// Same name and server address, empty data dir: a new node ID.
	p := 0
	fmt.Sscan(port, &p)
	back := nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: name, BootstrapExpect: 3,
		Join: []string{leader.GossipAddr()}, Edit: func(f *config.File) { f.Ports.Server = &p }})
	newID := agentNodeID(t, back)
	if newID == oldID {
		t.Fatal("the rejoining server kept its node ID")
	}
	testkit.Eventually(t, 30*time.Second, "the new identity voting, under its node name, and the old one gone", func() bool {
		code, body := do(t, "GET", leader.HTTP+"/v1/operator/raft/configuration", "")
		var conf struct {
			Servers []struct {
				ID, Node string
				Voter    bool
			}
		}
		if code != 200 || json.Unmarshal([]byte(body), &conf) != nil || len(conf.Servers) != 3 {
			return false
		}
		newVotes := false
		for _, s := range conf.Servers {
			if s.ID == oldID || s.Node == "" {
				return false // every peer is named once gossip knows it
			}
			if s.ID == newID && s.Voter && s.Node == name {
				newVotes = true
			}
		}
		return newVotes
	})
}

func agentNodeID(t *testing.T, a *nodetest.Agent) string {
	t.Helper()
	code, body := do(t, "GET", a.HTTP+"/v1/agent/self", "")
	var self struct{ Config struct{ NodeID string } }
	if code != 200 || json.Unmarshal([]byte(body), &self) != nil || self.Config.NodeID == "" {
		t.Fatalf("agent/self = %d %s", code, body)
	}
	return self.Config.NodeID
}

// threeServers starts a 3-server cluster with base options and returns
// its servers, its leader and one follower.
func threeServers(t *testing.T, base nodetest.Options) (servers []*nodetest.Agent, leader, follower *nodetest.Agent) {
	t.Helper()
	servers = nodetest.StartClusterWith(t, 3, 0, base)
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	leader = leaderOf(servers)
	for _, s := range servers {
		if s != leader {
			return servers, leader, s
		}
	}
	t.Fatal("no follower")
	return nil, nil, nil
}

// TestServerStabilization: autopilot's server_stabilization_time holds a
// new server as a non-voter until it has been healthy that long. One that
// joins a lone server and dies within it never gets a vote, so the lone
// server keeps its quorum and takes writes; one that stays is promoted,
// no sooner than the stabilization time after it joined.
func TestServerStabilization(t *testing.T) {
	if testing.Short() {
		t.Skip("servers joining a lone server")
	}
	const stabilization = 6 * time.Second
	autopilot := func(f *config.File) {
		d := stabilization
		f.Autopilot.ServerStabilizationTime = &d
	}
	lone := nodetest.Start(t, nodetest.Options{Cluster: true, NodeName: "server1", BootstrapExpect: 1, Edit: autopilot})
	testkit.Eventually(t, 30*time.Second, "a lone leader", lone.IsLeader)

	joined := time.Now()
	brief := nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: "server2", BootstrapExpect: 1, Join: []string{lone.GossipAddr()}, Edit: autopilot})
	testkit.Eventually(t, 30*time.Second, "server2 as a non-voter", func() bool {
		v, nv := raftVoters(t, lone)
		return v == 1 && nv == 1
	})
	// It stays a non-voter for a while (the leader looks every second),
	// then dies before its stabilization time is up.
	for seen := time.Now(); time.Since(seen) < 2*time.Second; time.Sleep(200 * time.Millisecond) {
		if v, _ := raftVoters(t, lone); v != 1 {
			t.Fatalf("%d voters %v after server2 joined: promoted before its stabilization time", v, time.Since(joined))
		}
	}
	if time.Since(joined) >= stabilization {
		t.Fatalf("server2 took %v to join: the test cannot kill it within its stabilization time", time.Since(joined))
	}
	if err := brief.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for time.Since(killed) < stabilization+2*time.Second {
		if v, _ := raftVoters(t, lone); v > 1 {
			t.Fatalf("server2 became a voter after it died")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !lone.IsLeader() {
		t.Fatal("the lone server lost its leadership to a server that joined and died")
	}
	if code, body := do(t, "PUT", lone.HTTP+"/v1/catalog/register", `{"Node":"ext","Address":"10.0.0.1"}`); code != 200 {
		t.Fatalf("write after server2 died: %d %s", code, body)
	}

	// A server that stays is promoted once stable.
	joined = time.Now()
	nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: "server3", BootstrapExpect: 1, Join: []string{lone.GossipAddr()}, Edit: autopilot})
	testkit.Eventually(t, 30*time.Second, "server3 promoted", func() bool {
		v, _ := raftVoters(t, lone)
		return v == 2
	})
	if took := time.Since(joined); took < stabilization {
		t.Fatalf("server3 promoted %v after it joined, before its stabilization time %v", took, stabilization)
	} else {
		t.Logf("server3 promoted %v after it joined (stabilization %v)", took, stabilization)
	}
}
