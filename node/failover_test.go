package node_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

func registerExt(client *http.Client, base, id string) (int, error) {
	body := fmt.Sprintf(`{"Node":"ext","Address":"10.0.0.1","Service":{"ID":%q,"Service":"w","Port":1}}`, id)
	req, _ := http.NewRequest("PUT", base+"/v1/catalog/register", strings.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Every registration acknowledged with a 200 while the leader is killed is
// on every surviving server afterwards.
func TestNoAcknowledgedWriteIsLost(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster under write load")
	}
	servers := nodetest.StartCluster(t, 3, 0)
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	leader := leaderOf(servers)
	var killed atomic.Bool

	var (
		mu    sync.Mutex
		acked []string
		tried atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 15 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := servers[rand.N(len(servers))]
				if killed.Load() && s == leader {
					continue
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				tried.Add(1)
				if code, err := registerExt(client, s.HTTP, id); err == nil && code == 200 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(time.Second) // writes flow before the kill (load, not a wait for a condition)
	killed.Store(true)
	rest := stopAgent(t, leader, servers)
	testkit.Eventually(t, 30*time.Second, "a new leader", func() bool { return leaderOf(rest) != nil })
	// Keep writing for a while under the new leader, bounded in time.
	testkit.Eventually(t, 30*time.Second, "writes under the new leader", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > 0 && strings.HasPrefix(acked[len(acked)-1], "w")
	})
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d registrations tried, %d acknowledged", tried.Load(), len(acked))
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged: the test did not load the cluster", len(acked))
	}

	for _, s := range rest {
		testkit.Eventually(t, 30*time.Second, "every acknowledged write on "+s.HTTP, func() bool {
			c := newClient(t, s)
			entries, _, err := c.Catalog().Service("w", "", nil)
			if err != nil {
				return false
			}
			have := map[string]bool{}
			for _, e := range entries {
				have[e.ServiceID] = true
			}
			for _, id := range acked {
				if !have[id] {
					return false
				}
			}
			return true
		})
	}
}

// With 2 of 3 servers down the last one refuses writes with a clear error
// and still serves stale reads; 5 servers survive 2 failures.
func TestQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("3- and 5-server clusters")
	}
	t.Run("3 servers, 2 down", func(t *testing.T) {
		servers := nodetest.StartCluster(t, 3, 0)
		testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
		if code, err := registerExt(http.DefaultClient, servers[0].HTTP, "before"); err != nil || code != 200 {
			t.Fatalf("write before the failures: %d %v", code, err)
		}
		last := servers[2]
		testkit.Eventually(t, 30*time.Second, "replication to the last server", func() bool {
			code, body := do(t, "GET", last.HTTP+"/v1/catalog/service/w?stale", "")
			return code == 200 && strings.Contains(body, "before")
		})
		servers[0].Shutdown(t.Context())
		servers[1].Shutdown(t.Context())
		start := time.Now()
		code, body := do(t, "PUT", last.HTTP+"/v1/catalog/register",
			`{"Node":"ext","Address":"10.0.0.1","Service":{"ID":"after","Service":"w","Port":1}}`)
		t.Logf("write without quorum answered %d %q after %v", code, strings.TrimSpace(body), time.Since(start))
		if code != 500 || !strings.Contains(body, "No cluster leader") {
			t.Fatalf("write without quorum = %d %q, want 500 No cluster leader", code, body)
		}
		code, body = do(t, "GET", last.HTTP+"/v1/catalog/service/w?stale", "")
		if code != 200 || !strings.Contains(body, "before") {
			t.Fatalf("stale read without quorum = %d %q", code, body)
		}
		// max_stale bounds staleness: this server has not heard from a
		// leader for longer than 1ms, so the read needs one, and fails.
		code, body = do(t, "GET", last.HTTP+"/v1/catalog/service/w?stale&max_stale=1ms", "")
		if code != 500 || !strings.Contains(body, "No cluster leader") {
			t.Fatalf("stale read past max_stale without quorum = %d %q", code, body)
		}
	})
	t.Run("5 servers, 2 down", func(t *testing.T) {
		servers := nodetest.StartCluster(t, 5, 0)
		testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
		leader := leaderOf(servers)
		rest := stopAgent(t, leader, servers)
		rest[0].Shutdown(t.Context())
		rest = rest[1:]
		testkit.Eventually(t, 30*time.Second, "a leader among the 3 left", func() bool { return leaderOf(rest) != nil })
		if code, err := registerExt(http.DefaultClient, rest[0].HTTP, "with-3-of-5"); err != nil || code != 200 {
			t.Fatalf("write with 3 of 5 servers: %d %v", code, err)
		}
	})
}

// With the production tunings (raft_multiplier 1, the LAN gossip timings):
// a leader killed without a word is replaced in under 2 s, and a client
// killed without leave is out of every agent's healthy answers in under
// 10 s.
func TestFailoverWithDefaultTunings(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server, 1-client cluster with production timings")
	}
	agents := nodetest.StartClusterWith(t, 3, 1, nodetest.Options{RaftMultiplier: 1, LANGossip: true})
	servers, client := agents[:3], agents[3]
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	c := newClient(t, client)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "app", Port: 1}); err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		sc := newClient(t, s)
		testkit.Eventually(t, 30*time.Second, "app on "+s.HTTP, func() bool {
			e, _, err := sc.Health().Service("app", "", true, nil)
			return err == nil && len(e) == 1
		})
	}

	old := leaderOf(servers)
	start := time.Now()
	rest := stopAgent(t, old, servers)
	testkit.Eventually(t, 30*time.Second, "a new leader", func() bool { return leaderOf(rest) != nil })
	elected := time.Since(start)
	t.Logf("raft_multiplier 1: new leader %v after the leader was killed", elected)
	if elected > 2*time.Second {
		t.Fatalf("failover took %v, target under 2s", elected)
	}

	start = time.Now()
	client.Shutdown(t.Context())
	for _, s := range rest {
		sc := newClient(t, s)
		testkit.Eventually(t, 30*time.Second, "the dead client's instance to leave "+s.HTTP, func() bool {
			e, _, err := sc.Health().Service("app", "", true, nil)
			return err == nil && len(e) == 0
		})
	}
	gone := time.Since(start)
	t.Logf("LAN gossip timings: a killed client's instance left every server's healthy answers after %v", gone)
	if gone > 10*time.Second {
		t.Fatalf("a dead host's instance stayed healthy for %v, budget 10s", gone)
	}
}
