package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/rpc"
)

// The cluster's own state: its leader, servers and datacenters, and the
// operator's controls over them.
var (
	// Leader is the leader's server address of a datacenter ("" when none
	// is known); Peers the voters' addresses.
	Leader = rpc.Declare(&surface, "Status.Leader", (*Server).leaderOf)
	Peers  = rpc.Declare(&surface, "Status.Peers", (*Server).peers)
	// RaftStats is how far the answering server's log and catalog are.
	RaftStats = rpc.Declare(&surface, "Status.RaftStats", (*Server).raftStats)
	// ListDatacenters lists the known datacenters, nearest first.
	ListDatacenters = rpc.Declare(&surface, "Catalog.ListDatacenters", (*Server).datacenters)

	// RaftRemovePeer takes a server out of the Raft configuration.
	RaftRemovePeer = rpc.Declare(&surface, "Operator.RaftRemovePeer", (*Server).raftRemovePeer)
	// AutopilotHealth is the leader's view of the servers' health.
	AutopilotHealth = rpc.Declare(&surface, "Operator.AutopilotHealth", (*Server).autopilotHealth)
	// AutopilotGetConfiguration reads the autopilot configuration;
	// AutopilotSetConfiguration stores one, failing with
	// catalog.ErrCASConflict when its check-and-set found another index.
	AutopilotGetConfiguration = rpc.Declare(&surface, "Operator.AutopilotGetConfiguration", (*Server).autopilotGetConfiguration)
	AutopilotSetConfiguration = rpc.Declare(&surface, "Operator.AutopilotSetConfiguration", (*Server).autopilotSetConfiguration)
)

func (s *Server) leaderOf(ctx context.Context, q *rpc.DCRequest) (*string, error) {
	reply := new(string)
	if s.remoteDC(q.Datacenter) {
		return reply, s.forwardDC(ctx, q.Datacenter, rpc.MethodOf(ctx), q, reply)
	}
	*reply = s.raft.Leader()
	return reply, nil
}

func (s *Server) peers(ctx context.Context, q *rpc.DCRequest) (*[]string, error) {
	reply := new([]string)
	if s.remoteDC(q.Datacenter) {
		return reply, s.forwardDC(ctx, q.Datacenter, rpc.MethodOf(ctx), q, reply)
	}
	peers, err := s.raft.Peers()
	*reply = peers
	return reply, err
}

// datacenters lists the datacenters the WAN pool knows, nearest first;
// only this one when the pool is disabled.
func (s *Server) datacenters(ctx context.Context, _ *rpc.Empty) (*[]string, error) {
	dcs := []string{s.dc}
	if s.wan != nil {
		dcs = s.wan.Datacenters()
	}
	return &dcs, nil
}

func (s *Server) raftStats(ctx context.Context, _ *rpc.Empty) (*rpc.RaftStats, error) {
	return Stats(s.raft), nil
}

// Stats is how far server r is, by Raft's own count (which a snapshot
// install moves too).
func Stats(r *consensus.Server) *rpc.RaftStats {
	return &rpc.RaftStats{LastIndex: r.LastIndex(), AppliedIndex: r.RaftAppliedIndex(), LastContact: r.LastContact(), Term: r.Term()}
}

// raftRemovePeer takes the server req names out of the Raft
// configuration, on the leader (forwarded there). A name that is not in
// the configuration is an error, as in Consul: it is a human's request,
// most likely mistyped. A live server removed this way comes back at the
// leader's next reconcile; a dead one stays out.
func (s *Server) raftRemovePeer(ctx context.Context, req *rpc.RemovePeerRequest) (*rpc.Empty, error) {
	return &rpc.Empty{}, s.onLeader(ctx, req, &rpc.Empty{}, func() error {
		servers, _, err := s.raft.Configuration()
		if err != nil {
			return err
		}
		for _, srv := range servers {
			if (req.ID != "" && srv.ID == req.ID) || (req.ID == "" && srv.Address == req.Address) {
				if err := s.raft.RemoveServer(srv.ID); err != nil {
					s.logger.Warn("failed to remove raft peer", "peer_id", srv.ID, "error", err)
					return err
				}
				s.logger.Warn("removed raft peer", "peer_id", srv.ID, "address", srv.Address)
				return nil
			}
		}
		if req.ID != "" {
			return fmt.Errorf("id %q was not found in the Raft configuration", req.ID)
		}
		return fmt.Errorf("address %q was not found in the Raft configuration", req.Address)
	})
}

// autopilotHealth is the leader's autopilot view of the servers
// (forwarded to the leader).
func (s *Server) autopilotHealth(ctx context.Context, req *rpc.Empty) (*rpc.AutopilotHealth, error) {
	out := &rpc.AutopilotHealth{}
	err := s.onLeader(ctx, req, out, func() error {
		h := s.health()
		if h == nil {
			return errors.New("autopilot: the leader has not looked at its servers yet in its term; try again in a second")
		}
		*out = *h
		return nil
	})
	return out, err
}

// errAutopilotUnsupported refuses to store an autopilot configuration
// while a server of the datacenter runs a build that cannot read it.
var errAutopilotUnsupported = fmt.Errorf("autopilot configuration: not every server of the datacenter reads it yet (log format %d); "+
	"it can be stored once all run this build", consensus.AutopilotVersion)

// autopilotGetConfiguration answers the stored autopilot configuration,
// or while none is stored the config file's of the server that answers.
func (s *Server) autopilotGetConfiguration(ctx context.Context, q *rpc.QueryOptions) (*rpc.AutopilotConfigResponse, error) {
	return query(s, ctx, q, q, func(ws memdb.WatchSet, out *rpc.AutopilotConfigResponse) (uint64, error) {
		idx, c, err := s.store.AutopilotConfig(ws)
		out.Config = s.autopilotFile
		if c != nil {
			out.Config = *c
		}
		return idx, err
	})
}

// autopilotSetConfiguration stores an autopilot configuration on the
// leader once every server reads it. A check-and-set that found another
// index answers catalog.ErrCASConflict (CASResult turns it into false): a
// reply field would be lost where a server forwards the write as any
// other, expecting an rpc.WriteResponse.
func (s *Server) autopilotSetConfiguration(ctx context.Context, req *catalog.AutopilotConfigRequest) (*rpc.WriteResponse, error) {
	if err := req.Config.Validate(); err != nil {
		return nil, err
	}
	return s.writeIf(ctx, req.Datacenter, consensus.AutopilotConfigType, req, func() error {
		if !s.serversRead(consensus.AutopilotVersion) {
			return errAutopilotUnsupported
		}
		return nil
	})
}

// CASResult is a check-and-set write's answer, from the write's: false,
// and no error, when it found another index stored.
func CASResult(_ *rpc.WriteResponse, err error) (bool, error) {
	if errors.Is(err, catalog.ErrCASConflict) {
		return false, nil
	}
	return err == nil, err
}
