package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/node/httpapi"
)

// Option changes how New builds an agent; for tests and embedding.
type Option func(*options)

type options struct {
	gossip          func(*gossip.Config)
	wanGossip       func(*gossip.Config)
	consensus       func(*consensus.Config)
	serverFailGrace time.Duration
}

// WithConsensusConfig edits a server's Raft settings last, before the
// Raft server is created: tests use it to hold a server's FSM or keep a
// server from starting elections.
func WithConsensusConfig(f func(*consensus.Config)) Option {
	return func(o *options) { o.consensus = f }
}

// WithServerFailGrace sets how long a failed server keeps its Raft vote
// before the leader removes it (default serverFailGrace).
func WithServerFailGrace(d time.Duration) Option {
	return func(o *options) { o.serverFailGrace = d }
}

// WithGossipConfig edits the LAN gossip settings before the pool starts,
// e.g. to gossip.TestConfig timings in in-process clusters.
func WithGossipConfig(f func(*gossip.Config)) Option {
	return func(o *options) { o.gossip = f }
}

// memberEventBuffer bounds the gossip events queued for the leader; past
// it events are dropped and the leader reconciles everything instead.
const memberEventBuffer = 1024

// startGossip joins this agent to its datacenter's LAN pool, and a server
// to the WAN pool first (its LAN tags carry the WAN port).
func (a *Agent) startGossip(ctx, bg context.Context) error {
	wanPort, err := a.startWAN(ctx, bg)
	if err != nil {
		return err
	}
	gcfg := gossip.DefaultLANConfig()
	gcfg.NodeName = a.cfg.NodeName
	gcfg.BindAddr = a.cfg.BindAddr.String()
	gcfg.BindPort = max(a.cfg.SerfLANPort, 0)
	gcfg.AdvertiseAddr = a.self.advertise.String()
	gcfg.ReconnectTimeout = a.cfg.ReconnectTimeout
	gcfg.Tags = gossip.Tags{Role: gossip.RoleClient, Datacenter: a.cfg.Datacenter, NodeID: a.self.nodeID, Build: Version}
	if a.cfg.ServerMode {
		gcfg.Tags.Role = gossip.RoleServer
		gcfg.Tags.ServerPort = a.server.ln.Addr().(*net.TCPAddr).Port
		gcfg.Tags.BootstrapExpect = a.cfg.BootstrapExpect
		gcfg.Tags.WANPort = wanPort
		gcfg.Tags.FSM = consensus.FSMVersion
	}
	if !a.cfg.InMemory {
		dir := filepath.Join(a.cfg.DataDir, "serf")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("gossip snapshot dir: %w", err)
		}
		gcfg.SnapshotPath = filepath.Join(dir, "local.snapshot")
	}
	gcfg.EventHandler = a.onMemberEvent
	gcfg.Logger = a.root
	if a.opts.gossip != nil {
		a.opts.gossip(&gcfg)
	}
	pool, err := gossip.New(gcfg)
	if err != nil {
		return err
	}
	if err := pool.Start(ctx); err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	a.gossip = pool
	a.startFlood(bg)
	if len(a.cfg.StartJoin) > 0 {
		if _, err := pool.Join(a.cfg.StartJoin); err != nil {
			return fmt.Errorf("join %v: %w", a.cfg.StartJoin, err)
		}
	}
	if len(a.cfg.RetryJoin) > 0 {
		a.life.wg.Add(1)
		go func() {
			defer a.life.wg.Done()
			err := gossip.RetryJoin(bg, pool, a.cfg.RetryJoin, 0, a.logger)
			if err != nil && bg.Err() == nil {
				a.logger.Warn("retry join gave up", "error", err)
			}
		}()
	}
	return nil
}

// onMemberEvent receives gossip events (from the pool's one event
// goroutine) and queues them for the leader without blocking.
func (a *Agent) onMemberEvent(e gossip.Event) {
	select {
	case a.members.events <- e:
	default:
		a.members.dropped.Store(true) // the leader will reconcile everyone
	}
	a.membershipChanged()
	a.dropFailedServers(e)
	if a.server != nil && a.server.wan != nil && (e.Type == gossip.MemberJoin || e.Type == gossip.MemberUpdate) {
		a.floodNow()
	}
	if !a.cfg.ServerMode && e.Type == gossip.MemberJoin {
		for _, m := range e.Members {
			if m.IsServer() {
				a.own.state.Trigger() // a server to sync with: do not wait for the retry
				break
			}
		}
	}
}

// dropFailedServers closes the RPC connections to servers that gossip
// declared failed or that left: calls in flight on them (a forwarded write,
// the cache's blocking queries) then fail over to another server at once
// instead of waiting out their deadline, which for a blocking query is
// minutes. A crashed host sends no RST, so nothing else would end them.
func (a *Agent) dropFailedServers(e gossip.Event) {
	if e.Type != gossip.MemberFailed && e.Type != gossip.MemberLeave {
		return
	}
	for _, m := range e.Members {
		if s, ok := gossip.ServerFromMember(m); ok {
			a.pool.Drop(s.Addr.String())
		}
	}
}

// membershipChanged wakes whoever waits for the member list to change.
func (a *Agent) membershipChanged() {
	select {
	case a.members.changedCh <- struct{}{}:
	default:
	}
}

// serverAddrs lists the RPC addresses of this datacenter's alive servers.
func (a *Agent) serverAddrs() []string {
	var out []string
	for _, m := range a.gossip.Servers(a.cfg.Datacenter) {
		if s, ok := gossip.ServerFromMember(m); ok {
			out = append(out, s.Addr.String())
		}
	}
	return out
}

// serfStatus is serf's numeric member status, which agent/members carries.
var serfStatus = map[gossip.MemberStatus]int{
	gossip.StatusNone: 0, gossip.StatusAlive: 1, gossip.StatusLeaving: 2, gossip.StatusLeft: 3, gossip.StatusFailed: 4,
}

func toAgentMember(m gossip.Member) httpapi.Member {
	tags := m.RawTags
	if tags == nil {
		tags = m.Tags.Encode()
	}
	return httpapi.Member{Name: m.Name, Addr: m.Addr.String(), Port: uint16(m.Port), Tags: tags,
		Status: serfStatus[m.Status], ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4}
}

// waitMembers blocks until the member list changes or d passes.
func (a *Agent) waitMembers(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.members.changedCh:
	case <-t.C:
	case <-ctx.Done():
	}
}

// GossipAddr is the address of the LAN gossip listener ("" before Start).
func (a *Agent) GossipAddr() string {
	if a.gossip == nil {
		return ""
	}
	host, port := a.gossip.Addr()
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// IsLeader reports whether this agent is the Raft leader.
func (a *Agent) IsLeader() bool {
	return a.server != nil && a.server.raft != nil && a.server.raft.IsLeader()
}
