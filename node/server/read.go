package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/rpc"
)

// read answers a read here, or forwards it: to another datacenter when
// opts names one, else to the leader when it is not stale and this server
// does not lead. It returns false when it forwarded (the reply is then
// filled by the server that answered).
func (s *Server) read(ctx context.Context, opts *rpc.QueryOptions, args, reply any) (bool, error) {
	if s.remoteDC(opts.Datacenter) {
		return false, s.forwardDC(ctx, opts.Datacenter, rpc.MethodOf(ctx), args, reply)
	}
	if s.staleOK(opts) {
		return true, nil
	}
	here := false
	err := s.onLeader(ctx, args, reply, func() error {
		here = true
		return nil
	})
	return here, err
}

// staleOK reports whether this server may answer a read with opts from
// its own catalog without asking the leader: stale reads allowed, and the
// leader heard from recently enough.
func (s *Server) staleOK(opts *rpc.QueryOptions) bool {
	return opts.AllowStale && s.raft.HasLeaderContact() && (opts.MaxStale <= 0 || s.raft.LastContact() <= opts.MaxStale)
}

// LocalHealthService answers a stale health/service read from this
// server's catalog, with a func that reports whether the answer is still
// current: until a change bears on the service, or a restore replaces the
// catalog, or the leader has been silent for longer than MaxStale. Callers
// that keep what they built from the answer reuse it while fresh says so.
// ok is false when the read may not be answered here (the caller then uses
// HealthServiceNodes).
func (s *Server) LocalHealthService(ctx context.Context, q *rpc.ServiceQuery) (nodes []catalog.CheckServiceNode, fresh func() bool, ok bool, err error) {
	opts := q.QueryOptions
	if opts.MinIndex != 0 || opts.RequireConsistent || s.remoteDC(opts.Datacenter) || !s.staleOK(&opts) {
		return nil, nil, false, nil
	}
	if err := s.readReady(ctx, &opts); err != nil {
		return nil, nil, true, err
	}
	ws := memdb.NewWatchSet()
	_, nodes, err = s.store.CheckServiceNodes(ws, q.Service, q.Tags, q.PassingOnly)
	if err != nil {
		return nil, nil, true, err
	}
	chans := make([]<-chan struct{}, 0, len(ws))
	for ch := range ws {
		chans = append(chans, ch)
	}
	fresh = func() bool {
		for _, ch := range chans {
			select {
			case <-ch:
				return false
			default:
			}
		}
		return s.staleOK(&opts)
	}
	return nodes, fresh, true, nil
}

// blockingQuery runs query once, or, with MinIndex, until its index moves
// past it or MaxWait (default 5 m, at most 10 m, plus up to 1/16 jitter so
// watchers woken together do not return together) passes. It fills meta.
func (s *Server) blockingQuery(ctx context.Context, opts *rpc.QueryOptions, meta *rpc.QueryMeta, query func(ws memdb.WatchSet) (uint64, error)) error {
	if err := s.readReady(ctx, opts); err != nil {
		return err
	}
	defer s.fillMeta(meta)
	if opts.MinIndex == 0 {
		idx, err := query(nil)
		meta.Index = max(idx, 1)
		return err
	}
	// One deadline for the whole query; it also ends with the caller.
	wctx, cancel := context.WithTimeout(ctx, BlockWait(opts.MaxWait))
	defer cancel()
	for {
		ws := memdb.NewWatchSet()
		idx, err := query(ws)
		if err != nil {
			return err
		}
		meta.Index = max(idx, 1)
		if meta.Index != opts.MinIndex || ws.WatchCtx(wctx) != nil {
			// Changed, or the wait is over: answer with what is current.
			return nil
		}
	}
}

// BlockWait is how long a blocking query with wait waits: 5 m when unset,
// at most 10 m, plus up to 1/16 of jitter so that watchers woken together
// do not return together.
func BlockWait(wait time.Duration) time.Duration {
	if wait <= 0 {
		wait = defaultWait
	}
	wait = min(wait, maxWait)
	return wait + rand.N(wait/16+1)
}

// readReady holds a read until this server's catalog has replayed its log
// and, for a read the leader answers (default or consistent), until this
// server has applied everything earlier terms committed: a new leader's
// catalog may lack writes its predecessor acknowledged, and answering from
// it would take a reader back in time. A consistent read also has the
// leader confirm it still leads. A halted catalog answers nothing.
func (s *Server) readReady(ctx context.Context, opts *rpc.QueryOptions) error {
	if err := s.raft.Halted(); err != nil {
		return err
	}
	onLeader := !opts.AllowStale || opts.RequireConsistent
	if !opts.RequireConsistent && (!onLeader || s.raft.LeaderReady()) {
		select {
		case <-s.raft.Ready():
			return nil // the common case, without a timer
		default:
		}
	}
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-s.raft.Ready():
	case <-t.C:
		return consensus.ErrNotReady
	case <-ctx.Done():
		return ctx.Err()
	}
	if opts.RequireConsistent {
		if err := s.raft.VerifyLeader(ctx); err != nil {
			return err
		}
	}
	if !onLeader {
		return nil
	}
	for !s.raft.LeaderReady() {
		if !s.raft.IsLeader() {
			return fmt.Errorf("%w: lost the leadership", consensus.ErrNotLeader)
		}
		select {
		case <-t.C:
			return consensus.ErrNotReady
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (s *Server) fillMeta(meta *rpc.QueryMeta) {
	meta.KnownLeader = s.raft.Leader() != ""
	meta.LastContact = s.raft.LastContact()
	meta.Server, meta.Term = s.node, s.raft.Term()
}
