package consensus

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// membershipTimeout bounds one change of the Raft configuration.
const membershipTimeout = 30 * time.Second

// ErrExistingState is returned by BootstrapWith on a server that already
// has Raft state: it joined a cluster before and must not start another.
var ErrExistingState = errors.New("raft state exists; not bootstrapping")

// BootstrapWith starts a new cluster whose voters are servers, as the
// servers of a -bootstrap-expect N datacenter do once N of them see each
// other: each calls it with the same set, so they agree. It refuses on a
// server that has state already.
func (s *Server) BootstrapWith(servers []ServerInfo) error {
	r := s.raftOrNil()
	if r == nil {
		return ErrShutdown
	}
	var conf raft.Configuration
	for _, srv := range servers {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(srv.ID), Address: raft.ServerAddress(srv.Address),
		})
	}
	if err := r.BootstrapCluster(conf).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return ErrExistingState
		}
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.logger.Info("bootstrapped a new cluster", "servers", len(servers))
	return nil
}

// AddNonvoter adds a server that receives the log but does not vote yet;
// a no-op when it is already in the configuration at that address.
func (s *Server) AddNonvoter(id, addr string) error {
	return s.changeConfig(func(r *raft.Raft) raft.IndexFuture {
		return r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
	})
}

// Promote makes a server a voter.
func (s *Server) Promote(id, addr string) error {
	return s.changeConfig(func(r *raft.Raft) raft.IndexFuture {
		return r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
	})
}

// RemoveServer takes a server out of the configuration.
func (s *Server) RemoveServer(id string) error {
	return s.changeConfig(func(r *raft.Raft) raft.IndexFuture {
		return r.RemoveServer(raft.ServerID(id), 0, membershipTimeout)
	})
}

func (s *Server) changeConfig(f func(*raft.Raft) raft.IndexFuture) error {
	r := s.raftOrNil()
	if r == nil {
		return ErrShutdown
	}
	if err := f(r).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fmt.Errorf("raft configuration change: %w", err)
	}
	return nil
}

// AppliedIndex is the index of the last command this server's catalog has
// applied: how far it has caught up.
func (s *Server) AppliedIndex() uint64 { return s.fsm.AppliedIndex() }

// LastIndex is the index of the last entry in this server's log.
func (s *Server) LastIndex() uint64 {
	r := s.raftOrNil()
	if r == nil {
		return 0
	}
	return r.LastIndex()
}

// HasState reports whether this server has Raft state from an earlier
// run (it then never bootstraps).
func (s *Server) HasState() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hadState
}

// RaftAppliedIndex is Raft's own applied index: entries handed to the FSM,
// snapshot installs included. It tells how far a server has caught up.
func (s *Server) RaftAppliedIndex() uint64 {
	r := s.raftOrNil()
	if r == nil {
		return 0
	}
	return r.AppliedIndex()
}

// HasLeaderContact reports whether this server leads or has heard from a
// leader: one that never has (just joined, cut off since it started)
// holds nothing worth serving, even stale.
func (s *Server) HasLeaderContact() bool {
	r := s.raftOrNil()
	if r == nil {
		return false
	}
	return r.State() == raft.Leader || !r.LastContact().IsZero()
}
