package rpc

import (
	"time"

	"github.com/meshd/meshd/catalog"
)

// QueryOptions are what every read takes: blocking, and how stale an
// answer may be.
type QueryOptions struct {
	// Datacenter names the datacenter to answer from; empty, or the
	// server's own, means its own. A server forwards a read for another
	// datacenter to one of that datacenter's servers (WAN).
	Datacenter string
	// MinIndex makes the read block until the answer's index differs from
	// it, or MaxWait passes. 0 answers at once.
	MinIndex uint64
	MaxWait  time.Duration
	// AllowStale lets any server answer from its own copy; otherwise the
	// leader answers. RequireConsistent has the leader confirm it still
	// leads first.
	AllowStale        bool
	RequireConsistent bool
	// MaxStale bounds a stale read: a server that has not heard from the
	// leader for longer passes the read to the leader. 0: no bound.
	MaxStale time.Duration
}

// Options returns q itself; every argument embedding QueryOptions has it,
// which is how the pool finds a blocking query's wait.
func (q *QueryOptions) Options() *QueryOptions { return q }

// QueryMeta describes an answer.
type QueryMeta struct {
	Index       uint64
	KnownLeader bool
	// LastContact is how long ago the answering server heard from the
	// leader (0 on the leader).
	LastContact time.Duration
	// Server and Term name the server that answered from its catalog and
	// its Raft term then (empty from a build before these fields): a
	// history checker tells a deposed leader's answers by them.
	Server string `msgpack:",omitempty"`
	Term   uint64 `msgpack:",omitempty"`
}

// Meta returns m itself; every answer embedding QueryMeta has it.
func (m *QueryMeta) Meta() *QueryMeta { return m }

// WriteResponse answers a write: the Raft index it was committed at.
type WriteResponse struct {
	Index uint64
}

// ServiceQuery asks for the instances of one service.
type ServiceQuery struct {
	Service     string
	Tags        []string
	PassingOnly bool
	QueryOptions
}

// NodeQuery asks about one node.
type NodeQuery struct {
	Node string
	QueryOptions
}

// StateQuery asks for the checks in one state ("any" for all).
type StateQuery struct {
	State string
	QueryOptions
}

// CheckServiceNodesResponse answers Health.ServiceNodes.
type CheckServiceNodesResponse struct {
	QueryMeta
	Nodes []catalog.CheckServiceNode
}

// ServiceNodesResponse answers Catalog.ServiceNodes and
// Catalog.AllServiceNodes.
type ServiceNodesResponse struct {
	QueryMeta
	Nodes []catalog.ServiceNode
}

// ServicesResponse answers Catalog.Services.
type ServicesResponse struct {
	QueryMeta
	Services map[string][]string
}

// NodesResponse answers Catalog.Nodes.
type NodesResponse struct {
	QueryMeta
	Nodes []*catalog.Node
}

// NodeServicesResponse answers Catalog.NodeServices; Node is nil for an
// unknown node.
type NodeServicesResponse struct {
	QueryMeta
	Node     *catalog.Node
	Services []*catalog.Service
}

// AddressQuery asks Catalog.AddressOwners what has an IP address.
type AddressQuery struct {
	// Address is an IP address in any form netip.ParseAddr reads.
	Address string
	QueryOptions
}

// AddressOwnersResponse answers Catalog.AddressOwners: the nodes whose
// address it is and the instances that have it as their own.
type AddressOwnersResponse struct {
	QueryMeta
	Nodes    []*catalog.Node
	Services []*catalog.Service
}

// ChecksResponse answers the Health check reads.
type ChecksResponse struct {
	QueryMeta
	Checks []*catalog.Check
}

// NodeStateResponse answers Catalog.NodeState: what the catalog holds for
// one node, for an agent's anti-entropy.
type NodeStateResponse struct {
	Node     *catalog.Node
	Services []*catalog.Service
	Checks   []*catalog.Check
}

// Empty is the argument of calls that take none.
type Empty struct{}

// DCRequest is the argument of calls that take only a datacenter (empty:
// the server's own). It decodes what an Empty encodes.
type DCRequest struct {
	Datacenter string
}

// RaftStats answers Status.RaftStats: how far a server has caught up, and
// how long ago it last heard from the leader (0 on the leader, and from a
// server of a build before the field).
type RaftStats struct {
	LastIndex    uint64
	AppliedIndex uint64
	LastContact  time.Duration
	// Term is the server's current Raft term (0 from an older build).
	Term uint64 `msgpack:",omitempty"`
}

// ServerHealth is one server as the leader's autopilot sees it.
type ServerHealth struct {
	ID, Name, Address string
	// SerfStatus is the server's gossip status ("alive", "failed",
	// "left", or "none" when gossip does not know it); Version its build.
	SerfStatus, Version string
	Leader, Voter       bool
	// LastContact is how long ago it heard from the leader; LastTerm and
	// LastIndex its Raft term and last log index.
	LastContact         time.Duration
	LastTerm, LastIndex uint64
	// Healthy: alive, answering, caught up and in contact (autopilot's
	// thresholds); StableSince is when it was first seen healthy in this
	// leader's term (zero while unhealthy).
	Healthy     bool
	StableSince time.Time
}

// AutopilotHealth answers Operator.AutopilotHealth: the datacenter's
// servers as the leader last looked at them (every second).
type AutopilotHealth struct {
	// Healthy is true when every server is; FailureTolerance is how many
	// healthy voters may fail before the quorum is lost.
	Healthy          bool
	FailureTolerance int
	Servers          []ServerHealth
}

// AutopilotConfigResponse answers Operator.AutopilotGetConfiguration: the
// stored configuration, or while none is stored the answering server's
// config file's, with CreateIndex and ModifyIndex 0.
type AutopilotConfigResponse struct {
	QueryMeta
	Config catalog.AutopilotConfig
}

// PreparedQueryGet asks PreparedQuery.Get for one query by ID (or name).
type PreparedQueryGet struct {
	QueryID string
	QueryOptions
}

// PreparedQueriesResponse answers PreparedQuery.Get and .List.
type PreparedQueriesResponse struct {
	QueryMeta
	Queries []*catalog.PreparedQuery
}

// PreparedQueryExecute asks PreparedQuery.Execute to run a stored query,
// named by ID or name, failing over as it says. Limit > 0 caps the
// instances returned.
type PreparedQueryExecute struct {
	QueryIDOrName string
	Limit         int
	QueryOptions
}

// PreparedQueryExecuteRemote asks a server of another datacenter to run a
// query definition (from the datacenter that holds it) on its catalog.
type PreparedQueryExecuteRemote struct {
	Query catalog.PreparedQuery
	Limit int
	QueryOptions
}

// PreparedQueryExecuteResponse is what a query found: Datacenter is where
// (another one after a failover) and Failovers how many other
// datacenters were tried. Found is false for an unknown query.
type PreparedQueryExecuteResponse struct {
	QueryMeta
	Found      bool
	Service    string
	Nodes      []catalog.CheckServiceNode
	DNS        catalog.QueryDNSOptions
	Datacenter string
	Failovers  int
	// Near is the query's Service.Near: the agent sorts by it.
	Near string
}

// RemovePeerRequest asks Operator.RaftRemovePeer to take one server out of
// the Raft configuration, named by its ID or by its server address (one of
// the two).
type RemovePeerRequest struct {
	ID      string
	Address string
}
