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
)

const (
	// reconcileInterval is how often the leader reconciles every member,
	// besides reacting to each gossip event.
	reconcileInterval = 30 * time.Second
	// autopilotInterval is how often the leader looks at its servers'
	// health (autopilotTick).
	autopilotInterval = time.Second
	// serverFailGrace is how long a failed server keeps its vote before
	// the leader removes it from the Raft configuration.
	serverFailGrace = 30 * time.Second
	// leaveWait bounds how long a leaving server waits for the leader to
	// take it out of the Raft configuration.
	leaveWait = 10 * time.Second
	// unknownGrace is how long an agent node must stay unknown to gossip,
	// under one leader, before that leader deregisters it: a leader that
	// has just started (after a restart of the whole cluster, say) has not
	// met everyone again yet.
	unknownGrace = time.Minute
)

// bootstrapLoop forms the cluster of a -bootstrap-expect N datacenter: once
// N servers with the same expectation see each other, each bootstraps
// Raft with the same set. It stops once Raft has state or a leader.
func (a *Agent) bootstrapLoop(ctx context.Context) {
	for {
		if a.raft.HasState() || a.raft.Leader() != "" || a.tryBootstrap(ctx) {
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
		if s.ID == a.nodeID {
			continue
		}
		var peers []string
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.pool.Call(cctx, s.Addr.String(), "Status.Peers", &rpc.Empty{}, &peers)
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
	if err := a.raft.BootstrapWith(infos); err != nil && !errors.Is(err, consensus.ErrExistingState) {
		a.logger.Warn("bootstrap", "error", err)
		return false
	}
	return true
}

// reconcileLoop runs on the leader: it makes the catalog and the Raft
// configuration agree with gossip, member by member as events arrive and
// in full at an interval (and whenever events were dropped).
func (a *Agent) reconcileLoop(ctx context.Context) {
	full := time.NewTicker(reconcileInterval)
	defer full.Stop()
	autopilot := time.NewTicker(autopilotInterval)
	defer autopilot.Stop()
	failedSince := map[string]time.Time{}
	unknownSince := map[string]time.Time{}
	stable := map[string]time.Time{} // servers healthy since
	a.autopilot.set(nil)             // a view from an earlier term is no view

	// Events queued before this server led are history: the full
	// reconcile below reads the current state instead.
	for drained := false; !drained; {
		select {
		case <-a.memberEvents:
		default:
			drained = true
		}
	}
	a.reconcileAll(ctx, failedSince, unknownSince)
	a.autopilotTick(ctx, stable)
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-a.memberEvents:
			// Act on each member's state now, not on the event's copy,
			// which may be old news.
			current := map[string]gossip.Member{}
			for _, m := range a.gossip.Members() {
				current[m.Name] = m
			}
			for _, m := range e.Members {
				cur, ok := current[m.Name]
				if !ok {
					if e.Type != gossip.MemberReap {
						continue
					}
					cur, cur.Status = m, gossip.StatusLeft // forgotten: as good as left
				}
				a.reconcileOne(ctx, cur, failedSince)
			}
		case <-full.C:
			a.reconcileAll(ctx, failedSince, unknownSince)
		case <-autopilot.C:
			if a.eventsDropped.Swap(false) {
				a.reconcileAll(ctx, failedSince, unknownSince)
			}
			a.autopilotTick(ctx, stable)
			if len(failedSince) > 0 {
				a.recheckFailedServers(ctx, failedSince)
			}
		}
	}
}

func (a *Agent) reconcileAll(ctx context.Context, failedSince, unknownSince map[string]time.Time) {
	known := map[string]bool{}
	for _, m := range a.gossip.Members() {
		if m.Tags.Datacenter != a.cfg.Datacenter {
			continue
		}
		known[strings.ToLower(m.Name)] = true
		a.reconcileOne(ctx, m, failedSince)
	}
	now := time.Now()
	for name := range unknownSince {
		if known[name] {
			delete(unknownSince, name)
		}
	}
	due := func(node string) bool {
		key := strings.ToLower(node)
		t0, ok := unknownSince[key]
		if !ok {
			unknownSince[key] = now
			return false
		}
		return now.Sub(t0) >= unknownGrace
	}
	if err := a.reapUnknownNodes(ctx, known, due); err != nil && ctx.Err() == nil {
		a.logger.Warn("reap unknown nodes", "error", err)
	}
}

func (a *Agent) reconcileOne(ctx context.Context, m gossip.Member, failedSince map[string]time.Time) {
	if m.Tags.Datacenter != a.cfg.Datacenter {
		return
	}
	if err := a.reconcileMember(ctx, toMember(m)); err != nil && ctx.Err() == nil {
		a.logger.Warn("reconcile member", "member", m.Name, "error", err)
	}
	if s, ok := gossip.ServerFromMember(m); ok && s.ID != "" && s.ID != a.nodeID {
		a.reconcileServer(ctx, s, failedSince)
	}
}

// reconcileServer keeps a server's place in the Raft configuration: a new
// alive server joins as a non-voter (promoted once stable), one that
// left is removed at once, a failed one after serverFailGrace if the
// voters that remain still make a majority.
func (a *Agent) reconcileServer(ctx context.Context, s gossip.Server, failedSince map[string]time.Time) {
	conf, _, err := a.raft.Configuration()
	if err != nil {
		return
	}
	var in *consensus.ServerInfo
	voters, failedVoters := 0, 0
	for i, c := range conf {
		if c.ID == s.ID {
			in = &conf[i]
		}
		if c.Voter {
			voters++
			if _, failed := failedSince[c.ID]; failed {
				failedVoters++
			}
		}
	}
	switch s.Status {
	case gossip.StatusAlive:
		delete(failedSince, s.ID)
		// A server that lost its data dir comes back at its address with a
		// new ID: its old entry is dead (the address is the new one's) and
		// would block the new one and count against the quorum forever.
		for _, c := range conf {
			if c.Address == s.Addr.String() && c.ID != s.ID && c.ID != a.nodeID {
				a.logger.Info("removing a stale raft entry at a rejoining server's address", "old_id", c.ID, "new_id", s.ID, "addr", c.Address)
				if err := a.raft.RemoveServer(c.ID); err != nil {
					a.logger.Warn("remove stale server", "id", c.ID, "error", err)
					return
				}
			}
		}
		if in == nil && s.FSM < a.raft.Format() {
			// It could not apply the log, or install a snapshot, of this
			// datacenter: a rollback to an older build, or one started
			// after the upgrade moved on.
			a.logger.Warn("not adding a server whose build cannot read this datacenter's log format; upgrade it",
				"server", s.Name, "reads", s.FSM, "format", a.raft.Format())
			return
		}
		if in == nil || in.Address != s.Addr.String() {
			a.logger.Info("adding a server to raft as a non-voter", "server", s.Name, "addr", s.Addr)
			if err := a.raft.AddNonvoter(s.ID, s.Addr.String()); err != nil {
				a.logger.Warn("add server", "server", s.Name, "error", err)
			}
		}
	case gossip.StatusLeft:
		delete(failedSince, s.ID)
		if in != nil {
			a.logger.Info("removing a server that left", "server", s.Name)
			if err := a.raft.RemoveServer(s.ID); err != nil {
				a.logger.Warn("remove server", "server", s.Name, "error", err)
			}
		}
	case gossip.StatusFailed:
		if in == nil {
			return
		}
		since, ok := failedSince[s.ID]
		if !ok {
			failedSince[s.ID] = time.Now()
			return
		}
		// Removing it must leave a majority of healthy voters, and at
		// least autopilot's min_quorum of voters; with
		// cleanup_dead_servers off it stays until an operator removes it.
		grace := serverFailGrace
		if a.opts.serverFailGrace > 0 {
			grace = a.opts.serverFailGrace
		}
		ap, _ := a.autopilotConfig()
		if ap.CleanupDeadServers && time.Since(since) >= grace && voters-failedVoters > (voters-1)/2 && voters-1 >= int(ap.MinQuorum) {
			a.logger.Info("removing a server failed for longer than the grace period", "server", s.Name, "grace", grace)
			if err := a.raft.RemoveServer(s.ID); err == nil {
				delete(failedSince, s.ID)
			}
		}
	}
}

// recheckFailedServers looks again at the servers being timed out, so a
// failed server loses its vote when its grace ends, not at the next full
// reconcile.
func (a *Agent) recheckFailedServers(ctx context.Context, failedSince map[string]time.Time) {
	for _, m := range a.gossip.Members() {
		if s, ok := gossip.ServerFromMember(m); ok {
			if _, timing := failedSince[s.ID]; timing && s.Datacenter == a.cfg.Datacenter {
				a.reconcileServer(ctx, s, failedSince)
			}
		}
	}
}

// serversRead reports whether every server of the Raft configuration
// advertises over gossip that it reads log and snapshot format format (the
// fsm tag): until then, in a rolling upgrade, the leader writes only what
// the previous build reads. A server gossip does not know yet counts as
// one that does not; this server's tags say what it reads, too.
func (a *Agent) serversRead(format int) bool {
	conf, _, err := a.raft.Configuration()
	if err != nil {
		return false
	}
	servers := a.dcServers()
	for _, c := range conf {
		if s, ok := servers[c.ID]; !ok || s.FSM < format {
			return false
		}
	}
	return true
}

// dcServers is what gossip knows of this datacenter's servers, by node
// ID, whatever their status.
func (a *Agent) dcServers() map[string]gossip.Server {
	out := map[string]gossip.Server{}
	for _, m := range a.gossip.Members() {
		if s, ok := gossip.ServerFromMember(m); ok && s.ID != "" && s.Datacenter == a.cfg.Datacenter {
			out[s.ID] = s
		}
	}
	return out
}

// serversReadStamps is consensus.Config.ServersReadStamps.
func (a *Agent) serversReadStamps() bool { return a.serversRead(consensus.StampedVersion) }

// Leave leaves the cluster gracefully: a server gives up its Raft vote
// (stepping down first if it leads), then the agent leaves gossip, so the
// leader deregisters its node. The agent should be shut down afterwards;
// LeftCh is closed when the leave is done.
func (a *Agent) Leave(ctx context.Context) error {
	// Stop syncing and running checks first: a push after the leader has
	// deregistered this node would put it back.
	a.local.Freeze()
	if err := a.runner.Shutdown(ctx); err != nil {
		a.logger.Warn("stop checks", "error", err)
	}
	if a.raft != nil && a.raft.IsLeader() {
		if ids, err := a.raft.ServerIDs(); err == nil && len(ids) > 1 {
			if err := a.raft.RemoveServer(a.nodeID); err != nil {
				a.logger.Warn("leave raft", "error", err)
			}
		}
	}
	var err error
	if a.wan != nil {
		if werr := a.wan.Leave(ctx); werr != nil {
			a.logger.Warn("leave the wan pool", "error", werr)
		}
	}
	if a.gossip != nil {
		err = a.gossip.Leave(ctx)
	}
	if a.raft != nil {
		// A follower waits for the leader to see it leave and remove it.
		deadline := time.Now().Add(leaveWait)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			ids, cerr := a.raft.ServerIDs()
			if cerr != nil || !slices.Contains(ids, a.nodeID) || len(ids) == 1 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	a.leftOnce.Do(func() { close(a.leftCh) })
	return err
}

// LeftCh is closed once the agent has left the cluster (agent/leave):
// whoever runs the agent should shut it down then.
func (a *Agent) LeftCh() <-chan struct{} { return a.leftCh }
