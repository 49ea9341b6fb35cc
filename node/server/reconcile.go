package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/node/rpc"
)

const (
	// reconcileInterval is how often the leader reconciles every member,
	// besides reacting to each gossip event.
	reconcileInterval = 30 * time.Second
	// autopilotInterval is how often the leader looks at its servers'
	// health (autopilotTick); recheckInterval how often the reconcile
	// loop looks again at failed servers and dropped events.
	autopilotInterval = time.Second
	recheckInterval   = time.Second
	// serverFailGrace is how long a failed server keeps its vote before
	// the leader removes it from the Raft configuration.
	serverFailGrace = 30 * time.Second
	// unknownGrace is how long an agent node must stay unknown to gossip,
	// under one leader, before that leader deregisters it: a leader that
	// has just started (after a restart of the whole cluster, say) has not
	// met everyone again yet.
	unknownGrace = time.Minute
)

// reconcileLoop runs on the leader: it makes the catalog and the Raft
// configuration agree with gossip, member by member as events arrive and
// in full at an interval (and whenever events were dropped).
func (l *Duties) reconcileLoop(ctx context.Context) {
	full := clock.NewTicker(l.clock, reconcileInterval)
	defer full.Stop()
	recheck := clock.NewTicker(l.clock, recheckInterval)
	defer recheck.Stop()
	failedSince := map[string]time.Time{}
	unknownSince := map[string]time.Time{}

	// Events queued before this server led are history: the full
	// reconcile below reads the current state instead.
	for drained := false; !drained; {
		select {
		case <-l.cfg.Events:
		default:
			drained = true
		}
	}
	l.reconcileAll(ctx, failedSince, unknownSince)
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-l.cfg.Events:
			// Act on each member's state now, not on the event's copy,
			// which may be old news.
			current := map[string]gossip.Member{}
			for _, m := range l.cfg.Members() {
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
				l.reconcileOne(ctx, cur, failedSince)
			}
		case <-full.C:
			l.reconcileAll(ctx, failedSince, unknownSince)
		case <-recheck.C:
			if l.cfg.EventsDropped != nil && l.cfg.EventsDropped.Swap(false) {
				l.reconcileAll(ctx, failedSince, unknownSince)
			}
			if len(failedSince) > 0 {
				l.recheckFailedServers(ctx, failedSince)
			}
		}
	}
}

func (l *Duties) reconcileAll(ctx context.Context, failedSince, unknownSince map[string]time.Time) {
	known := map[string]bool{}
	for _, m := range l.cfg.Members() {
		if m.Tags.Datacenter != l.cfg.Datacenter {
			continue
		}
		known[strings.ToLower(m.Name)] = true
		l.reconcileOne(ctx, m, failedSince)
	}
	now := l.clock.Now()
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
	if err := l.reapUnknownNodes(ctx, known, due); err != nil && ctx.Err() == nil {
		l.logger.Warn("reap unknown nodes", "error", err)
	}
}

func (l *Duties) reconcileOne(ctx context.Context, m gossip.Member, failedSince map[string]time.Time) {
	if m.Tags.Datacenter != l.cfg.Datacenter {
		return
	}
	if err := l.reconcileMember(ctx, toMember(m)); err != nil && ctx.Err() == nil {
		l.logger.Warn("reconcile member", "member", m.Name, "error", err)
	}
	if s, ok := gossip.ServerFromMember(m); ok && s.ID != "" && s.ID != l.cfg.NodeID {
		l.reconcileServer(ctx, s, failedSince)
	}
}

// reconcileServer keeps a server's place in the Raft configuration: a new
// alive server joins as a non-voter (promoted once stable), one that
// left is removed at once, a failed one after serverFailGrace if the
// voters that remain still make a majority.
func (l *Duties) reconcileServer(ctx context.Context, s gossip.Server, failedSince map[string]time.Time) {
	conf, _, err := l.cfg.Raft.Configuration()
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
			if c.Address == s.Addr.String() && c.ID != s.ID && c.ID != l.cfg.NodeID {
				l.logger.Info("removing a stale raft entry at a rejoining server's address", "old_id", c.ID, "new_id", s.ID, "addr", c.Address)
				if err := l.cfg.Raft.RemoveServer(c.ID); err != nil {
					l.logger.Warn("remove stale server", "id", c.ID, "error", err)
					return
				}
			}
		}
		if in == nil && s.FSM < l.cfg.Raft.Format() {
			// It could not apply the log, or install a snapshot, of this
			// datacenter: a rollback to an older build, or one started
			// after the upgrade moved on.
			l.logger.Warn("not adding a server whose build cannot read this datacenter's log format; upgrade it",
				"server", s.Name, "reads", s.FSM, "format", l.cfg.Raft.Format())
			return
		}
		if in == nil || in.Address != s.Addr.String() {
			l.logger.Info("adding a server to raft as a non-voter", "server", s.Name, "addr", s.Addr)
			if err := l.cfg.Raft.AddNonvoter(s.ID, s.Addr.String()); err != nil {
				l.logger.Warn("add server", "server", s.Name, "error", err)
			}
		}
	case gossip.StatusLeft:
		delete(failedSince, s.ID)
		if in != nil {
			l.logger.Info("removing a server that left", "server", s.Name)
			if err := l.cfg.Raft.RemoveServer(s.ID); err != nil {
				l.logger.Warn("remove server", "server", s.Name, "error", err)
			}
		}
	case gossip.StatusFailed:
		if in == nil {
			return
		}
		since, ok := failedSince[s.ID]
		if !ok {
			failedSince[s.ID] = l.clock.Now()
			return
		}
		// Removing it must leave a majority of healthy voters, and at
		// least autopilot's min_quorum of voters; with
		// cleanup_dead_servers off it stays until an operator removes it.
		grace := l.cfg.ServerFailGrace
		ap, _ := l.autopilotConfig()
		if ap.CleanupDeadServers && l.clock.Now().Sub(since) >= grace && voters-failedVoters > (voters-1)/2 && voters-1 >= int(ap.MinQuorum) {
			l.logger.Info("removing a server failed for longer than the grace period", "server", s.Name, "grace", grace)
			if err := l.cfg.Raft.RemoveServer(s.ID); err == nil {
				delete(failedSince, s.ID)
			}
		}
	}
}

// recheckFailedServers looks again at the servers being timed out, so a
// failed server loses its vote when its grace ends, not at the next full
// reconcile.
func (l *Duties) recheckFailedServers(ctx context.Context, failedSince map[string]time.Time) {
	for _, m := range l.cfg.Members() {
		if s, ok := gossip.ServerFromMember(m); ok {
			if _, timing := failedSince[s.ID]; timing && s.Datacenter == l.cfg.Datacenter {
				l.reconcileServer(ctx, s, failedSince)
			}
		}
	}
}

// ServersRead reports whether every server of the Raft configuration
// advertises over gossip that it reads log and snapshot format format (the
// fsm tag): until then, in a rolling upgrade, the leader writes only what
// the previous build reads. A server gossip does not know yet counts as
// one that does not; this server's tags say what it reads, too.
func (l *Duties) ServersRead(format int) bool {
	conf, _, err := l.cfg.Raft.Configuration()
	if err != nil {
		return false
	}
	servers := l.dcServers()
	for _, c := range conf {
		if s, ok := servers[c.ID]; !ok || s.FSM < format {
			return false
		}
	}
	return true
}

// dcServers is what gossip knows of this datacenter's servers, by node
// ID, whatever their status.
func (l *Duties) dcServers() map[string]gossip.Server {
	out := map[string]gossip.Server{}
	for _, m := range l.cfg.Members() {
		if s, ok := gossip.ServerFromMember(m); ok && s.ID != "" && s.Datacenter == l.cfg.Datacenter {
			out[s.ID] = s
		}
	}
	return out
}

// memberStatus is a gossip member's state as the leader sees it.
type memberStatus string

const (
	memberAlive   memberStatus = "alive"
	memberLeaving memberStatus = "leaving"
	memberLeft    memberStatus = "left"
	memberFailed  memberStatus = "failed"
)

// member is what reconciliation needs of a gossip member.
type member struct {
	Name   string
	ID     string
	Addr   string
	Status memberStatus
}

// reconcileMember makes the catalog agree with one gossip member: every
// member is a node with the serfHealth check; a failed member's check is
// critical (its instances leave healthy answers); a member that left is
// deregistered with everything on it.
func (l *Duties) reconcileMember(ctx context.Context, m member) error {
	switch m.Status {
	case memberAlive, memberLeaving:
		return l.setSerfHealth(ctx, m, catalog.HealthPassing, serfHealthOutput)
	case memberFailed:
		return l.setSerfHealth(ctx, m, catalog.HealthCritical, serfHealthFailedOutput)
	case memberLeft:
		return l.deregisterMember(ctx, m.Name)
	}
	return nil
}

// setSerfHealth registers the member's node if the catalog has none, and
// sets its serfHealth check, writing only what changed.
func (l *Duties) setSerfHealth(ctx context.Context, m member, status, output string) error {
	res, err := NodeState.Call(ctx, l.cfg.Servers, &rpc.NodeQuery{Node: m.Name})
	if err != nil {
		return err
	}
	if res.Node != nil {
		for _, c := range res.Checks {
			if c.CheckID == catalog.SerfCheckID && c.Status == status && c.Output == output {
				return nil // nothing to write
			}
		}
	}
	req := &catalog.RegisterRequest{
		ID: m.ID, Node: m.Name, Address: m.Addr, Datacenter: l.cfg.Datacenter,
		// The node keeps what its agent registered (meta, tagged
		// addresses): only the check is the leader's to write. The catalog
		// creates the node when it has none yet.
		SkipNodeUpdate: true,
		Checks: []*catalog.Check{{
			CheckID: catalog.SerfCheckID, Name: serfHealthName, Status: status, Output: output, Type: "serf",
		}},
	}
	if _, err := Register.Call(ctx, l.cfg.Servers, req); err != nil {
		return fmt.Errorf("reconcile %s: %w", m.Name, err)
	}
	return nil
}

func (l *Duties) deregisterMember(ctx context.Context, name string) error {
	if strings.EqualFold(name, l.cfg.NodeName) {
		return nil // this server's own leave is handled by its leave path
	}
	if _, err := Deregister.Call(ctx, l.cfg.Servers, &catalog.DeregisterRequest{Node: name}); err != nil {
		return fmt.Errorf("deregister %s: %w", name, err)
	}
	return nil
}

// reapUnknownNodes deregisters the agent nodes (those carrying serfHealth)
// that gossip no longer knows at all and whose time has come (due): they
// left or were reaped while no leader was looking. External nodes,
// without serfHealth, are left alone.
func (l *Duties) reapUnknownNodes(ctx context.Context, known map[string]bool, due func(node string) bool) error {
	res, err := ChecksInState.Call(ctx, l.cfg.Servers, &rpc.StateQuery{State: catalog.HealthAny})
	if err != nil {
		return err
	}
	for _, c := range res.Checks {
		if c.CheckID != catalog.SerfCheckID || known[strings.ToLower(c.Node)] || !due(c.Node) {
			continue
		}
		if err := l.deregisterMember(ctx, c.Node); err != nil {
			return err
		}
	}
	return nil
}

// toMember is what reconciliation needs of a gossip member.
func toMember(m gossip.Member) member {
	return member{Name: m.Name, ID: m.Tags.NodeID, Addr: m.Addr.String(), Status: memberStatus(m.Status)}
}
