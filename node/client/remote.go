package client

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"

	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// Remote is a client agent's rpc.Caller: it sends each call to a
// server of its datacenter. It sticks to one server (its connection and
// blocking queries stay there) and moves to another when that one cannot
// answer; what a follower cannot answer, it forwards to the leader itself.
type Remote struct {
	pool    *rpc.Pool
	servers func() []string // RPC addresses of the alive servers

	mu      sync.Mutex // guards current and calls
	current string
	// calls counts the calls made, by method, whatever their outcome.
	calls map[string]uint64
}

// NewRemote returns a caller that sends to the servers servers lists
// (their RPC addresses, asked on each call) through pool.
func NewRemote(pool *rpc.Pool, servers func() []string) *Remote {
	return &Remote{pool: pool, servers: servers, calls: make(map[string]uint64)}
}

// CallCounts returns a copy of the calls made so far, by method: what
// the agent has cost the servers.
func (s *Remote) CallCounts() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// order lists the servers to try: the current one first (its connection
// and blocking queries live there), then the others in random order.
func (s *Remote) order() []string {
	list := append([]string(nil), s.servers()...)
	rand.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
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
func (s *Remote) Call(ctx context.Context, method string, req, resp any) error {
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
