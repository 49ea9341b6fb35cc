package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/rpc"
)

// ErrNoServers means a client agent knows no server to ask.
var ErrNoServers = errors.New("no known servers")

// remoteServer answers catalogServer calls for a client agent by RPC to a
// server of its datacenter. It sticks to one server (its connection and
// blocking queries stay there) and moves to another when that one cannot
// be reached; the servers a follower cannot answer for, it forwards to the
// leader itself.
type remoteServer struct {
	pool    *rpc.Pool
	servers func() []string // RPC addresses of the alive servers

	mu      sync.Mutex // guards current and calls
	current string
	// calls counts the calls made, by method, whatever their outcome.
	calls map[string]uint64
}

func newRemoteServer(pool *rpc.Pool, servers func() []string) *remoteServer {
	return &remoteServer{pool: pool, servers: servers, calls: make(map[string]uint64)}
}

// callCounts returns a copy of the calls made so far, by method.
func (s *remoteServer) callCounts() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// RPCCalls reports the RPCs a client agent has sent to the servers, by
// method (nil on a server), and how many health/service answers its cache
// holds: what the agent costs the servers.
func (a *Agent) RPCCalls() (calls map[string]uint64, cacheEntries int) {
	rs, ok := a.server.(*remoteServer)
	if !ok {
		return nil, 0
	}
	if a.cache != nil {
		cacheEntries = a.cache.size()
	}
	return rs.callCounts(), cacheEntries
}

// order lists the servers to try: the current one first (its connection
// and blocking queries live there), then the others in random order.
func (s *remoteServer) order() []string {
	list := append([]string(nil), s.servers()...)
	shuffle(list)
	s.mu.Lock()
	cur := s.current
	s.mu.Unlock()
	for i, addr := range list {
		if addr == cur {
			list[0], list[i] = list[i], list[0]
		}
	}
	return list
}

// call invokes method on a server, moving to the next one while a server
// cannot be reached at all; an answer, error or not, ends the search.
func (s *remoteServer) call(ctx context.Context, method string, args, reply any) error {
	s.mu.Lock()
	s.calls[method]++
	s.mu.Unlock()
	list := s.order()
	if len(list) == 0 {
		return ErrNoServers
	}
	var lastErr error
	for _, addr := range list {
		err := fromRemote(s.pool.Call(ctx, addr, method, args, reply))
		if serverUnavailable(err) {
			lastErr = err
			continue
		}
		s.mu.Lock()
		s.current = addr
		s.mu.Unlock()
		return err
	}
	return fmt.Errorf("no server answered: %w", lastErr)
}

func (s *remoteServer) write(ctx context.Context, method string, args any) (uint64, error) {
	ctx, cancel := enterWrite(ctx, args)
	defer cancel()
	var reply rpc.WriteResponse
	err := s.call(ctx, method, args, &reply)
	return reply.Index, err
}

func (s *remoteServer) Register(ctx context.Context, req *catalog.RegisterRequest) (uint64, error) {
	return s.write(ctx, "Catalog.Register", req)
}

func (s *remoteServer) Deregister(ctx context.Context, req *catalog.DeregisterRequest) (uint64, error) {
	return s.write(ctx, "Catalog.Deregister", req)
}

func (s *remoteServer) UpdateCheck(ctx context.Context, u *catalog.CheckStatusUpdate) (uint64, error) {
	return s.write(ctx, "Catalog.UpdateCheck", u)
}

// read invokes a read method and returns its typed reply.
func read[T any](ctx context.Context, s *remoteServer, method string, args any) (*T, error) {
	reply := new(T)
	if err := s.call(ctx, method, args, reply); err != nil {
		return nil, err
	}
	return reply, nil
}

func (s *remoteServer) NodeState(ctx context.Context, node string) (*rpc.NodeStateResponse, error) {
	return read[rpc.NodeStateResponse](ctx, s, "Catalog.NodeState", &rpc.NodeQuery{Node: node})
}

func (s *remoteServer) HealthServiceNodes(ctx context.Context, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error) {
	return read[rpc.CheckServiceNodesResponse](ctx, s, "Health.ServiceNodes", q)
}

func (s *remoteServer) ServiceNodes(ctx context.Context, q *rpc.ServiceQuery) (*rpc.ServiceNodesResponse, error) {
	return read[rpc.ServiceNodesResponse](ctx, s, "Catalog.ServiceNodes", q)
}

func (s *remoteServer) AllServiceNodes(ctx context.Context, q *rpc.QueryOptions) (*rpc.ServiceNodesResponse, error) {
	return read[rpc.ServiceNodesResponse](ctx, s, "Catalog.AllServiceNodes", q)
}

func (s *remoteServer) Services(ctx context.Context, q *rpc.QueryOptions) (*rpc.ServicesResponse, error) {
	return read[rpc.ServicesResponse](ctx, s, "Catalog.Services", q)
}

func (s *remoteServer) Nodes(ctx context.Context, q *rpc.QueryOptions) (*rpc.NodesResponse, error) {
	return read[rpc.NodesResponse](ctx, s, "Catalog.Nodes", q)
}

func (s *remoteServer) AddressOwners(ctx context.Context, q *rpc.AddressQuery) (*rpc.AddressOwnersResponse, error) {
	return read[rpc.AddressOwnersResponse](ctx, s, "Catalog.AddressOwners", q)
}

func (s *remoteServer) NodeServices(ctx context.Context, q *rpc.NodeQuery) (*rpc.NodeServicesResponse, error) {
	return read[rpc.NodeServicesResponse](ctx, s, "Catalog.NodeServices", q)
}

func (s *remoteServer) NodeChecks(ctx context.Context, q *rpc.NodeQuery) (*rpc.ChecksResponse, error) {
	return read[rpc.ChecksResponse](ctx, s, "Health.NodeChecks", q)
}

func (s *remoteServer) ServiceChecks(ctx context.Context, q *rpc.ServiceQuery) (*rpc.ChecksResponse, error) {
	return read[rpc.ChecksResponse](ctx, s, "Health.ServiceChecks", q)
}

func (s *remoteServer) ChecksInState(ctx context.Context, q *rpc.StateQuery) (*rpc.ChecksResponse, error) {
	return read[rpc.ChecksResponse](ctx, s, "Health.ChecksInState", q)
}

func (s *remoteServer) Leader(ctx context.Context, dc string) (string, error) {
	var reply string
	err := s.call(ctx, "Status.Leader", &rpc.DCRequest{Datacenter: dc}, &reply)
	return reply, err
}

func (s *remoteServer) Peers(ctx context.Context, dc string) ([]string, error) {
	var reply []string
	err := s.call(ctx, "Status.Peers", &rpc.DCRequest{Datacenter: dc}, &reply)
	return reply, err
}

func (s *remoteServer) Datacenters(ctx context.Context) ([]string, error) {
	var reply []string
	err := s.call(ctx, "Catalog.ListDatacenters", &rpc.Empty{}, &reply)
	return reply, err
}

func (s *remoteServer) PreparedQueryApply(ctx context.Context, req *catalog.PreparedQueryRequest) (string, error) {
	if req.Op == catalog.QuerySet && req.Query != nil && req.Query.ID == "" {
		// The ID is chosen once, here, so a retry on another server
		// cannot create the query twice.
		id, err := newUUID()
		if err != nil {
			return "", err
		}
		req.Query.ID = id
	}
	_, err := s.write(ctx, "PreparedQuery.Apply", req)
	if req.Query == nil {
		return "", err
	}
	return req.Query.ID, err
}

func (s *remoteServer) PreparedQueryGet(ctx context.Context, q *rpc.PreparedQueryGet) (*rpc.PreparedQueriesResponse, error) {
	return read[rpc.PreparedQueriesResponse](ctx, s, "PreparedQuery.Get", q)
}

func (s *remoteServer) PreparedQueryList(ctx context.Context, q *rpc.QueryOptions) (*rpc.PreparedQueriesResponse, error) {
	return read[rpc.PreparedQueriesResponse](ctx, s, "PreparedQuery.List", q)
}

func (s *remoteServer) PreparedQueryExecute(ctx context.Context, q *rpc.PreparedQueryExecute) (*rpc.PreparedQueryExecuteResponse, error) {
	return read[rpc.PreparedQueryExecuteResponse](ctx, s, "PreparedQuery.Execute", q)
}

func (s *remoteServer) RaftRemovePeer(ctx context.Context, req *rpc.RemovePeerRequest) error {
	var reply rpc.Empty
	return s.call(ctx, "Operator.RaftRemovePeer", req, &reply)
}

func (s *remoteServer) AutopilotHealth(ctx context.Context) (*rpc.AutopilotHealth, error) {
	return read[rpc.AutopilotHealth](ctx, s, "Operator.AutopilotHealth", &rpc.Empty{})
}

func (s *remoteServer) AutopilotGetConfiguration(ctx context.Context, q *rpc.QueryOptions) (*rpc.AutopilotConfigResponse, error) {
	return read[rpc.AutopilotConfigResponse](ctx, s, "Operator.AutopilotGetConfiguration", q)
}

func (s *remoteServer) AutopilotSetConfiguration(ctx context.Context, req *catalog.AutopilotConfigRequest) (bool, error) {
	_, err := s.write(ctx, "Operator.AutopilotSetConfiguration", req)
	return casResult(err)
}

var _ catalogServer = (*remoteServer)(nil)
