package node

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// remoteServer is a client agent's rpc.Caller: it sends each call to a
// server of its datacenter. It sticks to one server (its connection and
// blocking queries stay there) and moves to another when that one cannot
// answer; what a follower cannot answer, it forwards to the leader itself.
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
	rs, ok := a.servers.(*remoteServer)
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

// Call invokes method on a server, moving to the next one while a server
// cannot answer at all; an answer, error or not, ends the search. A write
// gets its identity here, where it enters the cluster, so every server
// it reaches applies it once.
func (s *remoteServer) Call(ctx context.Context, method string, req, resp any) error {
	ctx, cancel := server.EnterWrite(ctx, req)
	defer cancel()
	s.mu.Lock()
	s.calls[method]++
	s.mu.Unlock()
	list := s.order()
	if len(list) == 0 {
		return server.ErrNoServers
	}
	var lastErr error
	for _, addr := range list {
		err := s.pool.Call(ctx, addr, method, req, resp)
		if server.Unavailable(err) {
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
