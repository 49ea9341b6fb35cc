package node

import (
	"context"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/inflight"
	"github.com/meshd/meshd/node/rpc"
)

// The net/rpc endpoints a server offers on its server port: thin wrappers
// over localServer, so a call from another host runs exactly the code an
// in-process call runs. ctx ends when the agent shuts down, which ends the
// blocking queries in flight.

type catalogEndpoint struct {
	s     *localServer
	ctx   context.Context
	calls *inflight.Tracker
}

func (e *catalogEndpoint) Register(args *catalog.RegisterRequest, reply *rpc.WriteResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	ctx, cancel := writeContext(e.ctx, args)
	defer cancel()
	idx, err := e.s.Register(ctx, args)
	reply.Index = idx
	return err
}

func (e *catalogEndpoint) Deregister(args *catalog.DeregisterRequest, reply *rpc.WriteResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	ctx, cancel := writeContext(e.ctx, args)
	defer cancel()
	idx, err := e.s.Deregister(ctx, args)
	reply.Index = idx
	return err
}

func (e *catalogEndpoint) UpdateCheck(args *catalog.CheckStatusUpdate, reply *rpc.WriteResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	ctx, cancel := writeContext(e.ctx, args)
	defer cancel()
	idx, err := e.s.UpdateCheck(ctx, args)
	reply.Index = idx
	return err
}

func (e *catalogEndpoint) NodeState(args *rpc.NodeQuery, reply *rpc.NodeStateResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.NodeState(e.ctx, args.Node))
}

func (e *catalogEndpoint) ServiceNodes(args *rpc.ServiceQuery, reply *rpc.ServiceNodesResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.ServiceNodes(e.ctx, args))
}

func (e *catalogEndpoint) AllServiceNodes(args *rpc.QueryOptions, reply *rpc.ServiceNodesResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.AllServiceNodes(e.ctx, args))
}

func (e *catalogEndpoint) Services(args *rpc.QueryOptions, reply *rpc.ServicesResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.Services(e.ctx, args))
}

func (e *catalogEndpoint) Nodes(args *rpc.QueryOptions, reply *rpc.NodesResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.Nodes(e.ctx, args))
}

func (e *catalogEndpoint) NodeServices(args *rpc.NodeQuery, reply *rpc.NodeServicesResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.NodeServices(e.ctx, args))
}

func (e *catalogEndpoint) AddressOwners(args *rpc.AddressQuery, reply *rpc.AddressOwnersResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.AddressOwners(e.ctx, args))
}

func (e *catalogEndpoint) ListDatacenters(args *rpc.Empty, reply *[]string) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	dcs, err := e.s.Datacenters(e.ctx)
	*reply = dcs
	return err
}

type preparedQueryEndpoint struct {
	s     *localServer
	ctx   context.Context
	calls *inflight.Tracker
}

func (e *preparedQueryEndpoint) Apply(args *catalog.PreparedQueryRequest, reply *rpc.WriteResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	ctx, cancel := writeContext(e.ctx, args)
	defer cancel()
	_, err := e.s.PreparedQueryApply(ctx, args)
	return err
}

func (e *preparedQueryEndpoint) Get(args *rpc.PreparedQueryGet, reply *rpc.PreparedQueriesResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.PreparedQueryGet(e.ctx, args))
}

func (e *preparedQueryEndpoint) List(args *rpc.QueryOptions, reply *rpc.PreparedQueriesResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.PreparedQueryList(e.ctx, args))
}

func (e *preparedQueryEndpoint) Execute(args *rpc.PreparedQueryExecute, reply *rpc.PreparedQueryExecuteResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.PreparedQueryExecute(e.ctx, args))
}

func (e *preparedQueryEndpoint) ExecuteRemote(args *rpc.PreparedQueryExecuteRemote, reply *rpc.PreparedQueryExecuteResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.PreparedQueryExecuteRemote(e.ctx, args))
}

type healthEndpoint struct {
	s     *localServer
	ctx   context.Context
	calls *inflight.Tracker
}

func (e *healthEndpoint) ServiceNodes(args *rpc.ServiceQuery, reply *rpc.CheckServiceNodesResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.HealthServiceNodes(e.ctx, args))
}

func (e *healthEndpoint) NodeChecks(args *rpc.NodeQuery, reply *rpc.ChecksResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.NodeChecks(e.ctx, args))
}

func (e *healthEndpoint) ServiceChecks(args *rpc.ServiceQuery, reply *rpc.ChecksResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.ServiceChecks(e.ctx, args))
}

func (e *healthEndpoint) ChecksInState(args *rpc.StateQuery, reply *rpc.ChecksResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.ChecksInState(e.ctx, args))
}

type statusEndpoint struct {
	s     *localServer
	ctx   context.Context
	calls *inflight.Tracker
}

func (e *statusEndpoint) Leader(args *rpc.DCRequest, reply *string) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	leader, err := e.s.Leader(e.ctx, args.Datacenter)
	*reply = leader
	return err
}

func (e *statusEndpoint) Peers(args *rpc.DCRequest, reply *[]string) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	peers, err := e.s.Peers(e.ctx, args.Datacenter)
	*reply = peers
	return err
}

func (e *statusEndpoint) RaftStats(args *rpc.Empty, reply *rpc.RaftStats) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	*reply = *e.s.RaftStats()
	return nil
}

type operatorEndpoint struct {
	s     *localServer
	ctx   context.Context
	calls *inflight.Tracker
}

func (e *operatorEndpoint) RaftRemovePeer(args *rpc.RemovePeerRequest, reply *rpc.Empty) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	ctx, cancel := context.WithTimeout(e.ctx, rpc.DefaultCallTimeout)
	defer cancel()
	return e.s.RaftRemovePeer(ctx, args)
}

func (e *operatorEndpoint) AutopilotHealth(args *rpc.Empty, reply *rpc.AutopilotHealth) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	ctx, cancel := context.WithTimeout(e.ctx, rpc.DefaultCallTimeout)
	defer cancel()
	return fill(reply)(e.s.AutopilotHealth(ctx))
}

func (e *operatorEndpoint) AutopilotGetConfiguration(args *rpc.QueryOptions, reply *rpc.AutopilotConfigResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	return fill(reply)(e.s.AutopilotGetConfiguration(e.ctx, args))
}

// AutopilotSetConfiguration answers a check-and-set that found another
// index with catalog.ErrCASConflict, which the caller turns back into
// false: a reply field would be lost where a server forwards the write as
// any other, expecting a rpc.WriteResponse.
func (e *operatorEndpoint) AutopilotSetConfiguration(args *catalog.AutopilotConfigRequest, reply *rpc.WriteResponse) error {
	if !e.calls.Enter() {
		return ErrShutdown
	}
	defer e.calls.Exit()
	ctx, cancel := writeContext(e.ctx, args)
	defer cancel()
	return e.s.setAutopilot(ctx, args)
}

// writeContext is the context of a write taken over RPC: the endpoint's,
// ending at the deadline the sender's budget set on receipt (none from a
// sender of an older build; enterWrite then bounds it). A request that
// waited past it, in a socket or behind a paused process, is dropped
// before it reaches Raft.
func writeContext(ctx context.Context, w catalog.Write) (context.Context, context.CancelFunc) {
	if dl := w.WriteMeta().Deadline(); !dl.IsZero() {
		return context.WithDeadline(ctx, dl)
	}
	return context.WithCancel(ctx)
}

// fill copies an answer into net/rpc's reply value.
func fill[T any](reply *T) func(*T, error) error {
	return func(v *T, err error) error {
		if v != nil {
			*reply = *v
		}
		return err
	}
}
