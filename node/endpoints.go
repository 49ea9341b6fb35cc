package node

import (
	"context"
	"fmt"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
)

// catalogServer is what an agent asks of the servers. A server agent
// answers in-process; the same calls go over the network once agents and
// servers are separate hosts.
type catalogServer interface {
	// Register commits a registration and returns its Raft index.
	Register(ctx context.Context, req *catalog.RegisterRequest) (uint64, error)
	// Deregister commits a deregistration and returns its Raft index.
	Deregister(ctx context.Context, req *catalog.DeregisterRequest) (uint64, error)
	// UpdateCheck commits a check's new status and output.
	UpdateCheck(ctx context.Context, u *catalog.CheckStatusUpdate) (uint64, error)
	// NodeState returns what the catalog holds for a node: nil node when
	// it has none.
	NodeState(ctx context.Context, node string) (*catalog.Node, []*catalog.Service, []*catalog.Check, error)
}

// localServer answers catalogServer calls on a server agent.
type localServer struct {
	raft  *consensus.Server
	store *catalog.Store
}

func (s *localServer) Register(ctx context.Context, req *catalog.RegisterRequest) (uint64, error) {
	return s.apply(ctx, consensus.RegisterType, req)
}

func (s *localServer) Deregister(ctx context.Context, req *catalog.DeregisterRequest) (uint64, error) {
	return s.apply(ctx, consensus.DeregisterType, req)
}

func (s *localServer) UpdateCheck(ctx context.Context, u *catalog.CheckStatusUpdate) (uint64, error) {
	return s.apply(ctx, consensus.CheckUpdateType, u)
}

// leaderWait bounds how long a write waits for an election to end before
// it fails (Consul waits about as long).
const leaderWait = 7 * time.Second

// apply waits out an election in progress rather than fail a write that
// arrives while the server is starting, but not for ever.
func (s *localServer) apply(ctx context.Context, t consensus.MessageType, body any) (uint64, error) {
	wctx, cancel := context.WithTimeout(ctx, leaderWait)
	err := s.raft.WaitForLeader(wctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("%w: no leader after %v", consensus.ErrNotLeader, leaderWait)
	}
	return s.raft.Apply(ctx, t, body)
}

func (s *localServer) NodeState(ctx context.Context, node string) (*catalog.Node, []*catalog.Service, []*catalog.Check, error) {
	select {
	case <-s.raft.Ready():
	case <-ctx.Done():
		return nil, nil, nil, fmt.Errorf("node state: %w", consensus.ErrNotReady)
	}
	_, n, svcs, err := s.store.NodeServices(nil, node)
	if err != nil || n == nil {
		return nil, nil, nil, err
	}
	_, chks, err := s.store.NodeChecks(nil, node)
	if err != nil {
		return nil, nil, nil, err
	}
	return n, svcs, chks, nil
}
