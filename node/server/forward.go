package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/wan"
)

// Blocking query bounds, as Consul's.
const (
	defaultWait = 5 * time.Minute
	maxWait     = 10 * time.Minute
	// readyWait bounds how long a read waits for a restarted server to
	// replay its log before failing.
	readyWait = 10 * time.Second
	// leaderWait bounds how long a write waits for an election to end
	// before it fails (Consul waits about as long).
	leaderWait = 7 * time.Second
)

// Bounds of a request forwarded to another datacenter. They end it before
// the caller's own RPC deadline (rpc.CallTimeout) would take this server
// for unreachable: a plain call gets forwardTimeout for every attempt, a
// blocking query its wait less forwardMargin.
const (
	forwardTimeout = 7 * time.Second
	forwardMargin  = 5 * time.Second
)

// forwardDC sends method to a server of datacenter dc through the WAN
// router, nearest first, moving to the next server while one cannot
// answer. Errors the remote endpoint returned come back as they are; the
// others name the datacenter.
func (s *Server) forwardDC(ctx context.Context, dc, method string, args, reply any) error {
	if s.wan == nil {
		return fmt.Errorf("%w %q (the WAN pool is disabled)", wan.ErrNoPath, dc)
	}
	budget := forwardTimeout
	if d := rpc.CallTimeout(args); d > rpc.DefaultCallTimeout {
		budget = d - forwardMargin
	}
	// A plain call gives each server a share of the budget, so that one
	// behind a cut link (whose pooled connection hangs, or whose dial
	// waits for ARP) leaves time for the next; a blocking query is
	// expected to take its wait on the first server that answers.
	perTry := budget
	if budget == forwardTimeout {
		perTry = forwardTimeout / wan.MaxAttempts
	}
	fctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err := s.wan.Forward(fctx, dc, func(ctx context.Context, addr string) error {
		started := time.Now()
		// The dial gets a plain call's share whatever the call: a server
		// that cannot be connected to in that time is behind a cut link
		// as far as this request is concerned.
		dctx, dcancel := context.WithTimeout(ctx, forwardTimeout/wan.MaxAttempts)
		err := s.pool.Connect(dctx, addr)
		dcancel()
		if err != nil && ctx.Err() == nil && dctx.Err() != nil {
			err = fmt.Errorf("rpc dial %s: no connection within %v", addr, forwardTimeout/wan.MaxAttempts)
		}
		tctx, cancel := context.WithTimeout(ctx, perTry)
		defer cancel()
		if err == nil {
			err = s.pool.Call(tctx, addr, method, args, reply)
		}
		if err != nil && ctx.Err() == nil && tctx.Err() != nil {
			// No answer in its share: the connection may be dead (a
			// host cut off sends nothing back), so do not keep it.
			s.pool.Drop(addr)
			err = fmt.Errorf("rpc %s to %s: no answer within %v", method, addr, perTry)
		}
		if Unavailable(err) {
			s.logger.Warn("forward to another datacenter failed", "datacenter", dc, "server", addr, "method", method,
				"after", time.Since(started).Round(time.Millisecond), "error", err)
		}
		return err
	}, Unavailable)
	if fctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return fmt.Errorf("%w %q: no answer within %v", wan.ErrUnreachable, dc, budget)
	}
	return err
}

// write applies a command on the leader: here, or forwarded to it, or to
// datacenter dc when that is another one; the call's own method is what
// is forwarded. It waits out an election, and a leader that cannot be
// reached (killed, but not yet noticed), for up to leaderWait before it
// fails with ErrNotLeader.
func (s *Server) write(ctx context.Context, dc string, t consensus.MessageType, body any) (*rpc.WriteResponse, error) {
	return s.writeIf(ctx, dc, t, body, nil)
}

// writeIf is write with a condition the leader checks before it applies
// the command (nil: none); its error fails the write.
func (s *Server) writeIf(ctx context.Context, dc string, t consensus.MessageType, body any, cond func() error) (*rpc.WriteResponse, error) {
	ctx, cancel := EnterWrite(ctx, body)
	defer cancel()
	reply := &rpc.WriteResponse{}
	if s.remoteDC(dc) {
		return reply, s.forwardDC(ctx, dc, rpc.MethodOf(ctx), body, reply)
	}
	err := s.onLeader(ctx, body, reply, func() error {
		if cond != nil {
			if err := cond(); err != nil {
				return err
			}
		}
		idx, err := s.raft.Apply(ctx, t, body)
		reply.Index = idx
		return err
	})
	return reply, err
}

// writeTimeout is the most a write may take from where it entered the
// cluster, every retry and forward included; consensus.WriteRetention is
// a multiple of it.
const writeTimeout = 30 * time.Second

// EnterWrite gives a write its identity and its deadline where it enters
// the cluster, unless it has them: a write that came from another agent or
// server keeps the identity it was given there, so every copy of it is
// applied once, and its deadline (the budget its sender had left) is
// already in ctx. Anything other than a write keeps ctx as it is.
func EnterWrite(ctx context.Context, body any) (context.Context, context.CancelFunc) {
	w, ok := body.(catalog.Write)
	if !ok {
		return ctx, func() {}
	}
	w.WriteMeta().EnsureID()
	return context.WithTimeout(ctx, writeTimeout)
}

// onLeader runs local when this server leads, or passes the call on to
// the leader, retrying while there is none or it cannot be reached, until
// leaderWait has passed.
func (s *Server) onLeader(ctx context.Context, args, reply any, local func() error) error {
	method := rpc.MethodOf(ctx)
	deadline := time.Now().Add(leaderWait)
	for {
		epoch := s.raft.LeaderEpoch()
		leader, err := s.leader(ctx)
		if err != nil {
			return err
		}
		if leader == "" {
			err = local()
			if !errors.Is(err, consensus.ErrNotLeader) {
				return err
			}
			// Leadership moved between the check and the call: ask again.
		} else {
			err = s.callLeader(ctx, epoch, leader, method, args, reply)
			if !rpc.IsTransportError(err) {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: no reachable leader after %v: %v", consensus.ErrNotLeader, leaderWait, err)
		}
		if !clock.Sleep(ctx, clock.Wall{}, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// errLeaderChanged ends a call to a leader that no longer leads, as far as
// this server knows.
var errLeaderChanged = errors.New("the leader changed while the call was in flight")

// callLeader calls method on leader and abandons the call when epoch ends
// (this server's view of the leader changed), returning a transport error
// so that onLeader asks the new leader. A leader that was killed never
// answers; without this its forwarded calls would wait out their deadline
// (10 s) while a new leader was elected in well under a second. The calls
// forwarded are writes that are safe to repeat (upserts, deletes, and
// queries whose ID was chosen before Raft) and reads.
func (s *Server) callLeader(ctx, epoch context.Context, leader, method string, args, reply any) error {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(epoch, func() { cancel(errLeaderChanged) })
	defer stop()
	err := s.pool.Call(cctx, leader, method, args, reply)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(cctx), errLeaderChanged) {
		return fmt.Errorf("rpc %s to %s: %w", method, leader, errLeaderChanged)
	}
	return err
}

// leader waits (bounded) for a leader and returns "" when it is this
// server, else the leader's address.
func (s *Server) leader(ctx context.Context) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, leaderWait)
	err := s.raft.WaitForLeader(wctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: no leader after %v", consensus.ErrNotLeader, leaderWait)
	}
	if s.raft.IsLeader() {
		return "", nil
	}
	return s.raft.Leader(), nil
}
