package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

// raftServers reads /v1/operator/raft/configuration from a.
func raftServers(t *testing.T, a *nodetest.Agent) []struct {
	ID, Node, Address string
	Leader, Voter     bool
} {
	t.Helper()
	code, body := do(t, "GET", a.HTTP+"/v1/operator/raft/configuration", "")
	var conf struct {
		Servers []struct {
			ID, Node, Address string
			Leader, Voter     bool
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &conf) != nil {
		t.Fatalf("raft configuration: %d %s", code, body)
	}
	return conf.Servers
}

// TestRemovePeer: operator/raft/peer takes a dead server out of the Raft
// configuration (Consul's endpoint, driven with consul/api), and answers
// Consul's texts for what it cannot do.
func TestRemovePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	// The leader would remove the dead server by itself after the grace.
	servers := nodetest.StartClusterWith(t, 3, 0, nodetest.Options{ServerFailGrace: time.Hour})
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	for _, tc := range []struct {
		query string
		code  int
		text  string
	}{
		{"", 400, "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove"},
		{"?id=a&address=b", 400, "Must specify only one of ?id or ?address"},
		{"?id=nope", 500, `id "nope" was not found in the Raft configuration`},
		{"?address=127.0.0.1:1", 500, `address "127.0.0.1:1" was not found in the Raft configuration`},
	} {
		code, body := do(t, "DELETE", servers[0].HTTP+"/v1/operator/raft/peer"+tc.query, "")
		if code != tc.code || !strings.Contains(body, tc.text) {
			t.Errorf("DELETE peer%s = %d %q, want %d %q", tc.query, code, body, tc.code, tc.text)
		}
	}

	// Autopilot's health, read with consul/api through a follower:
	// every server healthy, one failure tolerated.
	health := func(a *nodetest.Agent) *api.OperatorHealthReply {
		t.Helper()
		h, err := newClient(t, a).Operator().AutopilotServerHealth(nil)
		if err != nil {
			return &api.OperatorHealthReply{} // the leader's first look is a second away
		}
		return h
	}
	testkit.Eventually(t, 30*time.Second, "3 healthy servers, 1 failure tolerated", func() bool {
		h := health(servers[0])
		return h.Healthy && h.FailureTolerance == 1 && len(h.Servers) == 3
	})
	h := health(servers[1])
	leaders := 0
	for _, s := range h.Servers {
		if s.Leader {
			leaders++
		}
		if !s.Healthy || !s.Voter || s.SerfStatus != "alive" || s.Name == "" || s.StableSince.IsZero() || s.LastIndex == 0 {
			t.Errorf("server %+v", s)
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders in %+v", leaders, h.Servers)
	}

	victim := servers[2]
	if victim.IsLeader() {
		victim = servers[1]
	}
	var victimID string
	for _, s := range raftServers(t, servers[0]) {
		if s.Node == victim.Config().NodeName {
			victimID = s.ID
		}
	}
	rest := stopAgent(t, victim, servers)
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(rest) != nil })
	testkit.Eventually(t, 30*time.Second, "the dead server unhealthy, no failure tolerated", func() bool {
		h := health(rest[0])
		for _, s := range h.Servers {
			if s.ID == victimID && !s.Healthy {
				return !h.Healthy && h.FailureTolerance == 0
			}
		}
		return false
	})
	if err := newClient(t, rest[0]).Operator().RaftRemovePeerByID(victimID, nil); err != nil {
		t.Fatalf("remove %s: %v", victimID, err)
	}
	for _, s := range rest {
		testkit.Eventually(t, 10*time.Second, "two servers in "+s.HTTP+"'s configuration", func() bool {
			conf := raftServers(t, s)
			for _, c := range conf {
				if c.ID == victimID {
					return false
				}
			}
			return len(conf) == 2
		})
	}
	testkit.Eventually(t, 30*time.Second, "2 healthy servers after the removal", func() bool {
		h := health(rest[0])
		return h.Healthy && len(h.Servers) == 2 && h.FailureTolerance == 0
	})
}

// TestPeersJSONRecovery: three servers, writes replicated to all, two
// lost for good: the survivor alone has no quorum and never leads; with
// raft/peers.json naming only itself it restarts as the sole voter, with
// every write, and takes new ones.
func TestPeersJSONRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster, two lost")
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	var servers []*nodetest.Agent
	var join []string
	for i := range 3 {
		a := nodetest.Launch(t, nodetest.Options{Cluster: true, DataDir: dirs[i], NodeName: fmt.Sprintf("server%d", i+1), BootstrapExpect: 3, Join: join})
		if join == nil {
			join = []string{a.GossipAddr()}
		}
		servers = append(servers, a)
	}
	testkit.Eventually(t, 60*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	leader := leaderOf(servers)
	const n = 20
	for i := range n {
		body := fmt.Sprintf(`{"Node":"ext%d","Address":"10.0.1.%d","Service":{"Service":"kept","ID":"kept-%d","Port":80}}`, i, i+1, i)
		if code, b := do(t, "PUT", leader.HTTP+"/v1/catalog/register", body); code != 200 {
			t.Fatalf("register %d: %d %s", i, code, b)
		}
	}
	count := func(a *nodetest.Agent, mode string) int {
		code, body := do(t, "GET", a.HTTP+"/v1/catalog/service/kept?"+mode, "")
		if code != 200 {
			return -1
		}
		return strings.Count(body, `"ServiceName":"kept"`)
	}
	for _, s := range servers {
		testkit.Eventually(t, 30*time.Second, "every write on "+s.HTTP, func() bool { return count(s, "stale") == n })
	}
	survivor := servers[0]
	var id, addr string
	for _, s := range raftServers(t, survivor) {
		if s.Node == "server1" {
			id, addr = s.ID, s.Address
		}
	}
	for _, s := range servers {
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	peers := fmt.Sprintf(`[{"id": %q, "address": %q, "non_voter": false}]`, id, addr)
	path := filepath.Join(dirs[0], "raft", "peers.json")
	if err := os.WriteFile(path, []byte(peers), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "raft", "peers.info")); err != nil {
		t.Errorf("no peers.info beside the Raft data: %v", err)
	}
	back := nodetest.Launch(t, nodetest.Options{Cluster: true, DataDir: dirs[0], NodeName: "server1", BootstrapExpect: 3})
	testkit.Eventually(t, 30*time.Second, "the survivor to lead alone", back.IsLeader)
	if got := count(back, "consistent"); got != n {
		t.Fatalf("after the recovery the catalog has %d of the %d writes", got, n)
	}
	if code, b := do(t, "PUT", back.HTTP+"/v1/catalog/register", `{"Node":"after","Address":"10.0.2.1","Service":{"Service":"kept","ID":"kept-after","Port":80}}`); code != http.StatusOK {
		t.Fatalf("write after the recovery: %d %s", code, b)
	}
	if got := count(back, "consistent"); got != n+1 {
		t.Fatalf("%d instances after a new write, want %d", got, n+1)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("peers.json still there after the recovery: %v", err)
	}
	if conf := raftServers(t, back); len(conf) != 1 || !conf[0].Voter {
		t.Fatalf("configuration after the recovery: %+v", conf)
	}
}
