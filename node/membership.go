package node

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// leaveWait bounds how long a leaving server waits for the leader to take
// it out of the Raft configuration.
const leaveWait = 10 * time.Second

// bootstrapLoop forms the cluster of a -bootstrap-expect N datacenter: once
// N servers with the same expectation see each other, each bootstraps
// Raft with the same set. It stops once Raft has state or a leader.
func (a *Agent) bootstrapLoop(ctx context.Context) {
	for {
		if a.server.raft.HasState() || a.server.raft.Leader() != "" || a.tryBootstrap(ctx) {
			return
		}
		a.waitMembers(ctx, time.Second)
		if ctx.Err() != nil {
			return
		}
	}
}

// tryBootstrap bootstraps when enough servers are there; it reports
// whether the loop is done (bootstrapped, or found an existing cluster).
func (a *Agent) tryBootstrap(ctx context.Context) bool {
	expect := a.cfg.BootstrapExpect
	var servers []gossip.Server
	for _, m := range a.gossip.Servers(a.cfg.Datacenter) {
		s, ok := gossip.ServerFromMember(m)
		if !ok || s.ID == "" {
			continue
		}
		if s.Expect != 0 && s.Expect != expect {
			a.logger.Error("servers disagree on bootstrap_expect; not bootstrapping", "server", s.Name, "its_expect", s.Expect, "ours", expect)
			return false
		}
		servers = append(servers, s)
	}
	if len(servers) < expect {
		return false
	}
	if len(servers) > expect {
		// Servers seeing different sets would bootstrap different first
		// configurations: only an exact match is safe.
		a.logger.Error("more servers than bootstrap_expect; not bootstrapping", "seen", len(servers), "expect", expect)
		return false
	}
	// A server that joins a datacenter that already has a cluster must be
	// added by its leader, never start a second cluster: ask the others.
	for _, s := range servers {
		if s.ID == a.self.nodeID {
			continue
		}
		var peers []string
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.pool.Call(cctx, s.Addr.String(), server.Peers.Name(), &rpc.DCRequest{}, &peers)
		cancel()
		if err != nil {
			a.logger.Debug("cannot ask a server for its peers yet", "server", s.Name, "error", err)
			return false
		}
		if len(peers) > 0 {
			a.logger.Info("found an existing cluster; waiting for its leader to add this server", "server", s.Name)
			return true
		}
	}
	infos := make([]consensus.ServerInfo, 0, len(servers))
	for _, s := range servers {
		infos = append(infos, consensus.ServerInfo{ID: s.ID, Address: s.Addr.String()})
	}
	slices.SortFunc(infos, func(x, y consensus.ServerInfo) int { return strings.Compare(x.ID, y.ID) })
	if err := a.server.raft.BootstrapWith(infos); err != nil && !errors.Is(err, consensus.ErrExistingState) {
		a.logger.Warn("bootstrap", "error", err)
		return false
	}
	return true
}

// Leave leaves the cluster gracefully: a server gives up its Raft vote
// (stepping down first if it leads), then the agent leaves gossip, so the
// leader deregisters its node. The agent should be shut down afterwards;
// LeftCh is closed when the leave is done.
func (a *Agent) Leave(ctx context.Context) error {
	// Stop syncing and running checks first: a push after the leader has
	// deregistered this node would put it back.
	a.own.state.Freeze()
	if err := a.own.runner.Shutdown(ctx); err != nil {
		a.logger.Warn("stop checks", "error", err)
	}
	if a.server != nil && a.server.raft != nil && a.server.raft.IsLeader() {
		if ids, err := a.server.raft.ServerIDs(); err == nil && len(ids) > 1 {
			if err := a.server.raft.RemoveServer(a.self.nodeID); err != nil {
				a.logger.Warn("leave raft", "error", err)
			}
		}
	}
	var err error
	if a.server != nil && a.server.wan != nil {
		if werr := a.server.wan.Leave(ctx); werr != nil {
			a.logger.Warn("leave the wan pool", "error", werr)
		}
	}
	if a.gossip != nil {
		err = a.gossip.Leave(ctx)
	}
	if a.server != nil && a.server.raft != nil {
		// A follower waits for the leader to see it leave and remove it.
		deadline := time.Now().Add(leaveWait)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			ids, cerr := a.server.raft.ServerIDs()
			if cerr != nil || !slices.Contains(ids, a.self.nodeID) || len(ids) == 1 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	a.members.leftOnce.Do(func() { close(a.members.leftCh) })
	return err
}

// LeftCh is closed once the agent has left the cluster (agent/leave):
// whoever runs the agent should shut it down then.
func (a *Agent) LeftCh() <-chan struct{} { return a.members.leftCh }
