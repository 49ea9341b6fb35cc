package node

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/catalog/balance"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/node/httpapi"
	"github.com/meshd/meshd/node/local"
)

// The agent's parts as the HTTP API sees them (httpapi's interfaces).

// api builds the HTTP API over the agent's parts.
func (a *Agent) api() *httpapi.API {
	cfg := httpapi.Config{
		Runtime: a.cfg, Servers: a.servers, Agent: agentOps{a.own.registry, a}, Local: a.own.state, Members: membersOps{a},
		Cache: a.cache, Metrics: a.metrics.reg, Logger: a.logger,
	}
	if a.server != nil && a.server.raft != nil {
		cfg.Operator = operatorOps{a}
	}
	if a.server != nil && a.server.limits != nil {
		cfg.Blocking = a.server.limits.EnterBlocking
	}
	return httpapi.New(cfg)
}

// OpenRequests is the number of HTTP API requests being served now,
// blocking queries included.
func (a *Agent) OpenRequests() int64 {
	if a.front.api == nil {
		return 0
	}
	return a.front.api.OpenRequests()
}

// agentOps is the agent as the HTTP API changes it (httpapi.Agent): its
// registrations, leaving, and agent/self.
type agentOps struct {
	*local.Registry
	a *Agent
}

func (o agentOps) Leave(ctx context.Context) error { return o.a.Leave(ctx) }

func (o agentOps) Self() any {
	a := o.a
	var member any = map[string]any{"Name": a.cfg.NodeName, "Addr": a.self.advertise.String(), "Port": a.cfg.SerfLANPort, "Status": 1}
	if a.gossip != nil {
		member = toAgentMember(a.gossip.LocalMember())
	}
	stats := map[string]any{}
	if a.server != nil && a.server.raft != nil {
		stats["raft"] = a.server.raft.Stats()
	}
	meta := a.cfg.NodeMeta
	if meta == nil {
		meta = map[string]string{}
	}
	return map[string]any{
		"Config": map[string]any{
			"Datacenter":        a.cfg.Datacenter,
			"PrimaryDatacenter": a.cfg.Datacenter,
			"NodeName":          a.cfg.NodeName,
			"NodeID":            a.self.nodeID,
			"Server":            a.cfg.ServerMode,
			"Version":           Version,
			"Revision":          "",
		},
		"Member": member,
		"Meta":   meta,
		"Stats":  stats,
	}
}

// membersOps is the agent's gossip pools (httpapi.Members).
type membersOps struct{ a *Agent }

var errNoGossip = errors.New("gossip is not running")

// noWAN says why this agent has no WAN pool; nil when it has one.
func (o membersOps) noWAN() error {
	switch {
	case o.a.server != nil && o.a.server.wan != nil:
		return nil
	case !o.a.cfg.ServerMode:
		return httpapi.Error(http.StatusBadRequest, "WAN gossip is only run by servers; this agent is a client")
	}
	return httpapi.Error(http.StatusBadRequest, "WAN gossip is disabled on this server (ports.serf_wan = -1)")
}

// Members lists the LAN pool's members, or with wan the servers of every
// datacenter (a client has no WAN pool and answers an empty list, as
// Consul does).
func (o membersOps) Members(wan bool) ([]httpapi.Member, error) {
	var members []gossip.Member
	switch {
	case wan && (o.a.server == nil || o.a.server.wan == nil):
	case wan:
		members = o.a.server.wan.Members()
	case o.a.gossip == nil:
		return nil, errNoGossip
	default:
		members = o.a.gossip.Members()
	}
	out := make([]httpapi.Member, 0, len(members))
	for _, m := range members {
		out = append(out, toAgentMember(m))
	}
	return out, nil
}

// Join joins the pool at addr (a bare host gets the pool's port).
func (o membersOps) Join(addr string, wan bool) error {
	if wan {
		if err := o.noWAN(); err != nil {
			return err
		}
		if _, err := o.a.server.wan.Join([]string{addr}); err != nil {
			return err
		}
		o.a.floodNow()
		return nil
	}
	if o.a.gossip == nil {
		return errNoGossip
	}
	_, err := o.a.gossip.Join([]string{addr})
	return err
}

func (o membersOps) ForceLeave(node string, prune, wan bool) error {
	if o.a.gossip == nil {
		return errNoGossip
	}
	pool := interface{ ForceLeave(string, bool) error }(o.a.gossip)
	if wan {
		if err := o.noWAN(); err != nil {
			return err
		}
		pool = o.a.server.wan
	}
	if err := pool.ForceLeave(node, prune); err != nil {
		if errors.Is(err, gossip.ErrUnknownMember) {
			return httpapi.Error(http.StatusNotFound, "%v", err)
		}
		return err
	}
	return nil
}

// Distance estimates round-trip times from node near to instances'
// nodes by the gossip network coordinates; nil when near has no
// coordinate. A node is at distance 0 from itself, whatever its
// coordinate's height says.
func (o membersOps) Distance(near string) balance.Distance {
	g := o.a.gossip
	if g == nil {
		return nil
	}
	if _, ok := g.Coordinate(near); !ok {
		return nil
	}
	return func(inst *catalog.CheckServiceNode) (time.Duration, bool) {
		if strings.EqualFold(inst.Node.Node, near) {
			return 0, true
		}
		return g.RTT(near, inst.Node.Node)
	}
}

// operatorOps is a server's Raft (httpapi.Operator).
type operatorOps struct{ a *Agent }

func (o operatorOps) RaftConfiguration() ([]httpapi.RaftServer, uint64, error) {
	servers, index, err := o.a.server.raft.Configuration()
	if err != nil {
		return nil, 0, err
	}
	names := map[string]string{o.a.self.nodeID: o.a.cfg.NodeName}
	for _, m := range o.a.gossip.Members() { // failed servers too: they are still peers
		if srv, ok := gossip.ServerFromMember(m); ok && srv.ID != "" {
			names[srv.ID] = m.Name
		}
	}
	out := make([]httpapi.RaftServer, 0, len(servers))
	for _, s := range servers {
		out = append(out, httpapi.RaftServer{ID: s.ID, Node: names[s.ID], Address: s.Address, // "" for a server gossip does not know (yet)
			Leader: s.Leader, ProtocolVersion: "3", Voter: s.Voter})
	}
	return out, index, nil
}

func (o operatorOps) SaveSnapshot(w io.Writer) error {
	_, err := o.a.server.raft.SaveSnapshot(w)
	return err
}

func (o operatorOps) RestoreSnapshot(r io.Reader) error { return o.a.server.raft.RestoreSnapshot(r) }
