package node_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/nodetest"
)

// storedAutopilot waits until the autopilot configuration a serves is a
// stored one (the leader stores its config file's), and returns it.
func storedAutopilot(t *testing.T, a *nodetest.Agent) *api.AutopilotConfiguration {
	t.Helper()
	var conf *api.AutopilotConfiguration
	op := newClient(t, a).Operator()
	testkit.Eventually(t, 30*time.Second, "a stored autopilot configuration", func() bool {
		c, err := op.AutopilotGetConfiguration(nil)
		conf = c
		return err == nil && c.ModifyIndex > 0
	})
	return conf
}

// TestAutopilotConfiguration: operator/autopilot/configuration as Consul's
// clients use it (consul/api): the leader stores its config file's
// settings, a check-and-set stores only over the index it read, and bad
// settings are refused with the field named.
func TestAutopilotConfiguration(t *testing.T) {
	trailing, stabilization := 123, 7*time.Second
	a := nodetest.Start(t, nodetest.Options{Edit: func(f *config.File) {
		f.Autopilot.MaxTrailingLogs, f.Autopilot.ServerStabilizationTime = &trailing, &stabilization
	}})
	op := newClient(t, a).Operator()
	conf := storedAutopilot(t, a)
	if !conf.CleanupDeadServers || conf.MaxTrailingLogs != 123 || conf.ServerStabilizationTime.Duration() != 7*time.Second ||
		conf.LastContactThreshold.Duration() != 200*time.Millisecond || conf.CreateIndex != conf.ModifyIndex {
		t.Fatalf("stored from the config file: %+v", conf)
	}

	stale := *conf
	conf.MaxTrailingLogs, conf.MinQuorum = 40, 3
	conf.LastContactThreshold = api.NewReadableDuration(time.Second)
	conf.RedundancyZoneTag = "zone"
	if ok, err := op.AutopilotCASConfiguration(conf, nil); err != nil || !ok {
		t.Fatalf("CAS on the index read = %v %v", ok, err)
	}
	stale.MaxTrailingLogs = 1
	if ok, err := op.AutopilotCASConfiguration(&stale, nil); err != nil || ok {
		t.Fatalf("CAS on an old index = %v %v, want false", ok, err)
	}
	got, err := op.AutopilotGetConfiguration(nil)
	if err != nil || got.MaxTrailingLogs != 40 || got.MinQuorum != 3 || got.RedundancyZoneTag != "zone" ||
		got.LastContactThreshold.Duration() != time.Second || got.CreateIndex != stale.CreateIndex || got.ModifyIndex <= stale.ModifyIndex {
		t.Fatalf("after the CAS writes: %+v %v", got, err)
	}
	defaults := api.NewAutopilotConfiguration()
	if err := op.AutopilotSetConfiguration(&defaults, nil); err != nil {
		t.Fatalf("plain set: %v", err)
	}
	if got, _ := op.AutopilotGetConfiguration(nil); got.MaxTrailingLogs != 250 || got.RedundancyZoneTag != "" {
		t.Fatalf("after a plain set of the defaults: %+v", got)
	}

	// The raw API: fields left out take Consul's defaults, durations are
	// strings or nanoseconds, the answer is a bare boolean.
	const path = "/v1/operator/autopilot/configuration"
	if code, body := do(t, "PUT", a.HTTP+path, `{"MaxTrailingLogs":9,"ServerStabilizationTime":3000000000}`); code != 200 || strings.TrimSpace(body) != "true" {
		t.Fatalf("PUT = %d %q", code, body)
	}
	code, body := do(t, "GET", a.HTTP+path, "")
	var raw map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &raw) != nil || raw["ServerStabilizationTime"] != "3s" ||
		raw["LastContactThreshold"] != "200ms" || raw["MaxTrailingLogs"] != 9.0 || raw["CleanupDeadServers"] != true {
		t.Fatalf("GET = %d %s", code, body)
	}
	for _, tc := range []struct{ path, body, want string }{
		{path, `{"LastContactThreshold":"0s"}`, "LastContactThreshold"},
		{path, `{"ServerStabilizationTime":"-1s"}`, "ServerStabilizationTime"},
		{path, `{"MaxTrailingLogs":-1}`, "MaxTrailingLogs"},
		{path, `{"MinQuorum":"3"}`, "MinQuorum"},
		{path, `{"UpgradeVersionTag":"` + strings.Repeat("v", 300) + `"}`, "UpgradeVersionTag"},
		{path, ``, "body"},
		{path + "?cas=x", `{}`, "Error parsing cas value"},
	} {
		if code, body := do(t, "PUT", a.HTTP+tc.path, tc.body); code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("PUT %s %s = %d %q, want 400 naming %s", tc.path, tc.body, code, body, tc.want)
		}
	}
	if got, _ := op.AutopilotGetConfiguration(nil); got.MaxTrailingLogs != 9 {
		t.Fatalf("a refused PUT changed the configuration: %+v", got)
	}
}

// TestAutopilotConfigurationCluster: the configuration is one for the
// datacenter, stored through any agent (a client's write goes to a
// server, a follower's to the leader) and read on every server, and the
// leader's autopilot runs on it: a last-contact threshold no follower can
// meet makes them unhealthy, and putting it back makes them healthy.
func TestAutopilotConfigurationCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	agents := nodetest.StartClusterWith(t, 3, 1, nodetest.Options{})
	servers, client := agents[:3], agents[3]
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	var follower *nodetest.Agent
	for _, s := range servers {
		if s != leaderOf(servers) {
			follower = s
		}
	}
	viaClient, viaFollower := newClient(t, client).Operator(), newClient(t, follower).Operator()
	healthy := func(want bool) {
		t.Helper()
		testkit.Eventually(t, 30*time.Second, "autopilot health", func() bool {
			// consul/api decodes the 429 an unhealthy datacenter answers.
			h, _ := viaClient.AutopilotServerHealth(nil)
			return h != nil && h.Healthy == want && len(h.Servers) == 3
		})
	}
	healthy(true)

	conf := storedAutopilot(t, client)
	conf.LastContactThreshold = api.NewReadableDuration(time.Nanosecond)
	if ok, err := viaClient.AutopilotCASConfiguration(conf, nil); err != nil || !ok {
		t.Fatalf("CAS through the client agent = %v %v", ok, err)
	}
	healthy(false)
	stale := *conf
	conf, err := viaFollower.AutopilotGetConfiguration(nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := viaFollower.AutopilotCASConfiguration(&stale, nil); err != nil || ok {
		t.Fatalf("CAS on an old index through a follower = %v %v, want false", ok, err)
	}
	conf.LastContactThreshold = api.NewReadableDuration(200 * time.Millisecond)
	if ok, err := viaFollower.AutopilotCASConfiguration(conf, nil); err != nil || !ok {
		t.Fatalf("CAS through a follower = %v %v", ok, err)
	}
	healthy(true)
	want, err := viaClient.AutopilotGetConfiguration(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		op := newClient(t, s).Operator()
		testkit.Eventually(t, 10*time.Second, "every server stores it", func() bool {
			got, err := op.AutopilotGetConfiguration(&api.QueryOptions{AllowStale: true})
			return err == nil && got.ModifyIndex == want.ModifyIndex && got.LastContactThreshold.Duration() == 200*time.Millisecond
		})
	}
}

// TestAutopilotConfigurationWaitsForEveryServer: while a server of the
// datacenter runs a build that cannot read the stored configuration (its
// gossip says log format 2), the leader stores none and refuses to, and
// reads answer the config file's settings with index 0.
func TestAutopilotConfigurationWaitsForEveryServer(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	servers := nodetest.StartClusterWith(t, 3, 0, nodetest.Options{Gossip: func(c *gossip.Config) {
		if c.NodeName == "server3" {
			c.Tags.FSM = consensus.StampedVersion
		}
	}})
	testkit.Eventually(t, 30*time.Second, "a leader", func() bool { return leaderOf(servers) != nil })
	// The leader's autopilot looked at all three, gossip's tags known:
	// it has tried to store the configuration by then.
	op := newClient(t, servers[0]).Operator()
	testkit.Eventually(t, 30*time.Second, "autopilot sees every server", func() bool {
		h, err := op.AutopilotServerHealth(nil)
		return err == nil && h.Healthy && len(h.Servers) == 3
	})
	conf, err := op.AutopilotGetConfiguration(nil)
	if err != nil || conf.ModifyIndex != 0 || conf.MaxTrailingLogs != 250 {
		t.Fatalf("GET = %+v %v, want the config file's, not stored", conf, err)
	}
	ok, err := op.AutopilotCASConfiguration(conf, nil)
	if ok || err == nil || !strings.Contains(err.Error(), "not every server of the datacenter reads it yet") {
		t.Fatalf("CAS while a server cannot read it = %v %v", ok, err)
	}
}

// TestOlderServerNotAddedPastItsFormat: once the datacenter's log holds
// the autopilot configuration (format 3), a server whose gossip says it
// reads only format 2 (a rollback, or a server started from the previous
// build after the upgrade) is not added to Raft, where it would halt at
// the first entry it cannot apply; a server of this build joining after
// it is.
func TestOlderServerNotAddedPastItsFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("3 servers")
	}
	first := nodetest.StartClusterWith(t, 1, 0, nodetest.Options{})[0]
	storedAutopilot(t, first)
	nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: "old", BootstrapExpect: 1, Join: []string{first.GossipAddr()},
		Gossip: func(c *gossip.Config) { c.Tags.FSM = consensus.StampedVersion }})
	// The leader handles member events in order: once it has added the
	// server that joined after the old one, it has decided on the old one.
	agent := newClient(t, first).Agent()
	testkit.Eventually(t, 30*time.Second, "the old server in gossip", func() bool {
		members, err := agent.Members(false)
		for _, m := range members {
			if m.Name == "old" && m.Status == 1 {
				return err == nil
			}
		}
		return false
	})
	nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: "current", BootstrapExpect: 1, Join: []string{first.GossipAddr()}})
	testkit.Eventually(t, 30*time.Second, "the current server in Raft", func() bool {
		for _, s := range raftServers(t, first) {
			if s.Node == "current" {
				return true
			}
		}
		return false
	})
	for _, s := range raftServers(t, first) {
		if s.Node == "old" {
			t.Fatalf("a server reading format 2 was added to a datacenter at format 3: %+v", raftServers(t, first))
		}
	}
}
