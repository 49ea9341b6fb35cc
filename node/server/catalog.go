package server

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/rpc"
)

// The catalog's writes and reads. Each method is declared once, beside
// the Server method that answers it; callers invoke it through an
// rpc.Caller (in-process on a server, over the network on a client).
var (
	// Register commits a registration. It is validated where it is
	// applied, on the leader, whatever path it took (ValidateRegister).
	Register = rpc.Declare(&surface, "Catalog.Register", (*Server).register)
	// Deregister commits a deregistration.
	Deregister = rpc.Declare(&surface, "Catalog.Deregister", (*Server).deregister)
	// UpdateCheck commits a check's new status and output.
	UpdateCheck = rpc.Declare(&surface, "Catalog.UpdateCheck", (*Server).updateCheck)
	// NodeState is what the catalog holds for a node, from the answering
	// server's own copy (for an agent's anti-entropy): a nil Node when it
	// has none.
	NodeState = rpc.Declare(&surface, "Catalog.NodeState", (*Server).nodeState)

	ServiceNodes    = rpc.Declare(&surface, "Catalog.ServiceNodes", (*Server).serviceNodes)
	AllServiceNodes = rpc.Declare(&surface, "Catalog.AllServiceNodes", (*Server).allServiceNodes)
	Services        = rpc.Declare(&surface, "Catalog.Services", (*Server).services)
	Nodes           = rpc.Declare(&surface, "Catalog.Nodes", (*Server).nodes)
	// NodeServices is one node and its instances (Node nil when unknown).
	NodeServices = rpc.Declare(&surface, "Catalog.NodeServices", (*Server).nodeServices)
	// NodeServiceList is one node and those of its instances that match a
	// filter, evaluated here, where the data is, as Consul does.
	NodeServiceList = rpc.Declare(&surface, "Catalog.NodeServiceList", (*Server).nodeServiceList)
	// AddressOwners is the nodes and instances that have an IP address.
	AddressOwners = rpc.Declare(&surface, "Catalog.AddressOwners", (*Server).addressOwners)

	HealthServiceNodes = rpc.Declare(&surface, "Health.ServiceNodes", (*Server).healthServiceNodes)
	NodeChecks         = rpc.Declare(&surface, "Health.NodeChecks", (*Server).nodeChecks)
	ServiceChecks      = rpc.Declare(&surface, "Health.ServiceChecks", (*Server).serviceChecks)
	ChecksInState      = rpc.Declare(&surface, "Health.ChecksInState", (*Server).checksInState)
)

func (s *Server) register(ctx context.Context, req *catalog.RegisterRequest) (*rpc.WriteResponse, error) {
	return s.writeIf(ctx, req.Datacenter, consensus.RegisterType, req, func() error { return ValidateRegister(req) })
}

func (s *Server) deregister(ctx context.Context, req *catalog.DeregisterRequest) (*rpc.WriteResponse, error) {
	return s.writeIf(ctx, req.Datacenter, consensus.DeregisterType, req, req.Validate)
}

func (s *Server) updateCheck(ctx context.Context, u *catalog.CheckStatusUpdate) (*rpc.WriteResponse, error) {
	return s.write(ctx, "", consensus.CheckUpdateType, u)
}

func (s *Server) nodeState(ctx context.Context, q *rpc.NodeQuery) (*rpc.NodeStateResponse, error) {
	out := &rpc.NodeStateResponse{}
	// Anti-entropy compares with this server's own copy, wherever it is.
	if err := s.readReady(ctx, &rpc.QueryOptions{AllowStale: true}); err != nil {
		return nil, err
	}
	_, n, svcs, err := s.store.NodeServices(nil, q.Node)
	if err != nil || n == nil {
		return out, err
	}
	_, chks, err := s.store.NodeChecks(nil, q.Node)
	if err != nil {
		return nil, err
	}
	out.Node, out.Services, out.Checks = n, svcs, chks
	return out, nil
}

// query answers a read: forwarded where read says, else from this
// server's catalog, blocking as opts asks; run fills out from a snapshot
// of the catalog, watching ws.
func query[T any, PT interface {
	*T
	Meta() *rpc.QueryMeta
}](s *Server, ctx context.Context, opts *rpc.QueryOptions, args any, run func(ws memdb.WatchSet, out PT) (uint64, error)) (PT, error) {
	out := PT(new(T))
	if here, err := s.read(ctx, opts, args, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, opts, out.Meta(), func(ws memdb.WatchSet) (uint64, error) {
		return run(ws, out)
	})
}

func (s *Server) healthServiceNodes(ctx context.Context, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error) {
	return query(s, ctx, &q.QueryOptions, q,
		func(ws memdb.WatchSet, out *rpc.CheckServiceNodesResponse) (idx uint64, err error) {
			idx, out.Nodes, err = s.store.CheckServiceNodes(ws, q.Service, q.Tags, q.PassingOnly)
			return idx, err
		})
}

func (s *Server) serviceNodes(ctx context.Context, q *rpc.ServiceQuery) (*rpc.ServiceNodesResponse, error) {
	return query(s, ctx, &q.QueryOptions, q,
		func(ws memdb.WatchSet, out *rpc.ServiceNodesResponse) (idx uint64, err error) {
			idx, out.Nodes, err = s.store.ServiceNodes(ws, q.Service, q.Tags)
			return idx, err
		})
}

func (s *Server) allServiceNodes(ctx context.Context, q *rpc.QueryOptions) (*rpc.ServiceNodesResponse, error) {
	return query(s, ctx, q, q,
		func(ws memdb.WatchSet, out *rpc.ServiceNodesResponse) (idx uint64, err error) {
			idx, out.Nodes, err = s.store.AllServiceNodes(ws)
			return idx, err
		})
}

func (s *Server) services(ctx context.Context, q *rpc.QueryOptions) (*rpc.ServicesResponse, error) {
	return query(s, ctx, q, q,
		func(ws memdb.WatchSet, out *rpc.ServicesResponse) (idx uint64, err error) {
			idx, out.Services, err = s.store.Services(ws)
			return idx, err
		})
}

func (s *Server) nodes(ctx context.Context, q *rpc.QueryOptions) (*rpc.NodesResponse, error) {
	return query(s, ctx, q, q,
		func(ws memdb.WatchSet, out *rpc.NodesResponse) (idx uint64, err error) {
			idx, out.Nodes, err = s.store.Nodes(ws)
			return idx, err
		})
}

func (s *Server) addressOwners(ctx context.Context, q *rpc.AddressQuery) (*rpc.AddressOwnersResponse, error) {
	ip, err := netip.ParseAddr(q.Address)
	if err != nil {
		return nil, fmt.Errorf("address owners: %w", err)
	}
	return query(s, ctx, &q.QueryOptions, q,
		func(ws memdb.WatchSet, out *rpc.AddressOwnersResponse) (idx uint64, err error) {
			idx, out.Nodes, out.Services, err = s.store.AddressOwners(ws, ip)
			return idx, err
		})
}

func (s *Server) nodeServices(ctx context.Context, q *rpc.NodeQuery) (*rpc.NodeServicesResponse, error) {
	return query(s, ctx, &q.QueryOptions, q,
		func(ws memdb.WatchSet, out *rpc.NodeServicesResponse) (idx uint64, err error) {
			idx, out.Node, out.Services, err = s.store.NodeServices(ws, q.Node)
			return idx, err
		})
}

// NodeServiceListQuery asks Catalog.NodeServiceList for a node's
// instances that match Filter (a go-bexpr expression over the instance's
// fields; empty keeps all).
type NodeServiceListQuery struct {
	Node   string
	Filter string
	rpc.QueryOptions
}

// nodeServiceList filters where it reads, so a bad filter fails the
// first round of a blocking query, and an answer forwarded from the
// leader comes back filtered already.
func (s *Server) nodeServiceList(ctx context.Context, q *NodeServiceListQuery) (*rpc.NodeServicesResponse, error) {
	return query(s, ctx, &q.QueryOptions, q, func(ws memdb.WatchSet, out *rpc.NodeServicesResponse) (idx uint64, err error) {
		idx, out.Node, out.Services, err = s.store.NodeServices(ws, q.Node)
		if err == nil && out.Node != nil {
			out.Services, err = catalog.Filter(q.Filter, out.Services)
		}
		return idx, err
	})
}

func (s *Server) nodeChecks(ctx context.Context, q *rpc.NodeQuery) (*rpc.ChecksResponse, error) {
	return s.checks(ctx, &q.QueryOptions, q, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return s.store.NodeChecks(ws, q.Node)
	})
}

func (s *Server) serviceChecks(ctx context.Context, q *rpc.ServiceQuery) (*rpc.ChecksResponse, error) {
	return s.checks(ctx, &q.QueryOptions, q, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return s.store.ServiceChecks(ws, q.Service)
	})
}

func (s *Server) checksInState(ctx context.Context, q *rpc.StateQuery) (*rpc.ChecksResponse, error) {
	return s.checks(ctx, &q.QueryOptions, q, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return s.store.ChecksInState(ws, q.State)
	})
}

func (s *Server) checks(ctx context.Context, opts *rpc.QueryOptions, args any,
	run func(ws memdb.WatchSet) (uint64, []*catalog.Check, error)) (*rpc.ChecksResponse, error) {
	return query(s, ctx, opts, args,
		func(ws memdb.WatchSet, out *rpc.ChecksResponse) (idx uint64, err error) {
			idx, out.Checks, err = run(ws)
			return idx, err
		})
}
