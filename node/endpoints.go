package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/wan"
)

// catalogServer is what an agent asks of the servers: every catalog write
// and read. A server agent answers in-process (localServer); the same
// calls go over the network (rpc) from other hosts, and a follower
// forwards what only the leader may answer.
type catalogServer interface {
	// Register commits a registration and returns its Raft index.
	Register(ctx context.Context, req *catalog.RegisterRequest) (uint64, error)
	// Deregister commits a deregistration and returns its Raft index.
	Deregister(ctx context.Context, req *catalog.DeregisterRequest) (uint64, error)
	// UpdateCheck commits a check's new status and output.
	UpdateCheck(ctx context.Context, u *catalog.CheckStatusUpdate) (uint64, error)
	// NodeState returns what the catalog holds for a node: nil node when
	// it has none.
	NodeState(ctx context.Context, node string) (*rpc.NodeStateResponse, error)

	HealthServiceNodes(ctx context.Context, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error)
	ServiceNodes(ctx context.Context, q *rpc.ServiceQuery) (*rpc.ServiceNodesResponse, error)
	AllServiceNodes(ctx context.Context, q *rpc.QueryOptions) (*rpc.ServiceNodesResponse, error)
	Services(ctx context.Context, q *rpc.QueryOptions) (*rpc.ServicesResponse, error)
	Nodes(ctx context.Context, q *rpc.QueryOptions) (*rpc.NodesResponse, error)
	NodeServices(ctx context.Context, q *rpc.NodeQuery) (*rpc.NodeServicesResponse, error)
	AddressOwners(ctx context.Context, q *rpc.AddressQuery) (*rpc.AddressOwnersResponse, error)
	NodeChecks(ctx context.Context, q *rpc.NodeQuery) (*rpc.ChecksResponse, error)
	ServiceChecks(ctx context.Context, q *rpc.ServiceQuery) (*rpc.ChecksResponse, error)
	ChecksInState(ctx context.Context, q *rpc.StateQuery) (*rpc.ChecksResponse, error)

	// Leader is the leader's server address ("" when none is known);
	// Peers the voters' addresses; of datacenter dc ("" for the local one).
	Leader(ctx context.Context, dc string) (string, error)
	Peers(ctx context.Context, dc string) ([]string, error)
	// Datacenters lists the known datacenters, nearest first.
	Datacenters(ctx context.Context) ([]string, error)

	// Prepared queries: create, replace or delete (returns the ID), read,
	// list, and run.
	PreparedQueryApply(ctx context.Context, req *catalog.PreparedQueryRequest) (string, error)
	PreparedQueryGet(ctx context.Context, q *rpc.PreparedQueryGet) (*rpc.PreparedQueriesResponse, error)
	PreparedQueryList(ctx context.Context, q *rpc.QueryOptions) (*rpc.PreparedQueriesResponse, error)
	PreparedQueryExecute(ctx context.Context, q *rpc.PreparedQueryExecute) (*rpc.PreparedQueryExecuteResponse, error)

	// RaftRemovePeer takes a server out of the Raft configuration, on the
	// leader.
	RaftRemovePeer(ctx context.Context, req *rpc.RemovePeerRequest) error
	// AutopilotHealth is the leader's view of the servers' health.
	AutopilotHealth(ctx context.Context) (*rpc.AutopilotHealth, error)
	// AutopilotGetConfiguration reads the autopilot configuration;
	// AutopilotSetConfiguration stores one, false when its check-and-set
	// found another index stored.
	AutopilotGetConfiguration(ctx context.Context, q *rpc.QueryOptions) (*rpc.AutopilotConfigResponse, error)
	AutopilotSetConfiguration(ctx context.Context, req *catalog.AutopilotConfigRequest) (bool, error)
}

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

// localServer answers catalogServer calls on a server agent.
type localServer struct {
	raft  *consensus.Server
	store *catalog.Store
	pool  *rpc.Pool
	// dc is this server's datacenter; wan routes requests for the others
	// (nil when the WAN pool is disabled: no other datacenter is known).
	dc  string
	wan *wan.Router
	// logger hears of failed forwards to other datacenters (nil: none).
	logger *slog.Logger
	// node is this server's node name, in the answers it gives.
	node string
	// health is the leader's latest autopilot view of the servers; nil
	// until it has looked once in its term.
	health func() *rpc.AutopilotHealth
	// autopilotFile is the autopilot configuration of this server's config
	// files, which holds until one is stored; serversRead reports whether
	// every server reads a log format (the fsm gossip tag).
	autopilotFile catalog.AutopilotConfig
	serversRead   func(format int) bool
}

// Register and Deregister are validated where the write is applied, on
// the leader, whatever path they took to it (validateRegister).
func (s *localServer) Register(ctx context.Context, req *catalog.RegisterRequest) (uint64, error) {
	return s.writeIf(ctx, req.Datacenter, consensus.RegisterType, req, "Catalog.Register",
		func() error { return validateRegister(req) })
}

func (s *localServer) Deregister(ctx context.Context, req *catalog.DeregisterRequest) (uint64, error) {
	return s.writeIf(ctx, req.Datacenter, consensus.DeregisterType, req, "Catalog.Deregister", req.Validate)
}

func (s *localServer) UpdateCheck(ctx context.Context, u *catalog.CheckStatusUpdate) (uint64, error) {
	return s.write(ctx, "", consensus.CheckUpdateType, u, "Catalog.UpdateCheck")
}

// remoteDC reports whether dc names a datacenter other than this one.
func (s *localServer) remoteDC(dc string) bool {
	return dc != "" && !strings.EqualFold(dc, s.dc)
}

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
func (s *localServer) forwardDC(ctx context.Context, dc, method string, args, reply any) error {
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
		err = fromRemote(err)
		if serverUnavailable(err) && s.logger != nil {
			s.logger.Warn("forward to another datacenter failed", "datacenter", dc, "server", addr, "method", method,
				"after", time.Since(started).Round(time.Millisecond), "error", err)
		}
		return err
	}, serverUnavailable)
	if fctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return fmt.Errorf("%w %q: no answer within %v", wan.ErrUnreachable, dc, budget)
	}
	return err
}

// serverUnavailable reports whether err means the server asked could not
// answer for its cluster now (unreachable, cut off from the quorum,
// replaying its log, stopping), so another server may.
func serverUnavailable(err error) bool {
	return rpc.IsTransportError(err) || errors.Is(err, consensus.ErrNotLeader) ||
		errors.Is(err, consensus.ErrNotReady) || errors.Is(err, ErrShutdown)
}

// write applies a command on the leader: here, or forwarded to it, or to
// datacenter dc when that is another one. It waits out an election, and a
// leader that cannot be reached (killed, but not yet noticed), for up to
// leaderWait before it fails with ErrNotLeader.
func (s *localServer) write(ctx context.Context, dc string, t consensus.MessageType, body any, method string) (uint64, error) {
	return s.writeIf(ctx, dc, t, body, method, nil)
}

// writeIf is write with a condition the leader checks before it applies
// the command (nil: none); its error fails the write.
func (s *localServer) writeIf(ctx context.Context, dc string, t consensus.MessageType, body any, method string, cond func() error) (uint64, error) {
	ctx, cancel := enterWrite(ctx, body)
	defer cancel()
	var reply rpc.WriteResponse
	if s.remoteDC(dc) {
		err := s.forwardDC(ctx, dc, method, body, &reply)
		return reply.Index, err
	}
	err := s.onLeader(ctx, method, body, &reply, func() error {
		if cond != nil {
			if err := cond(); err != nil {
				return err
			}
		}
		idx, err := s.raft.Apply(ctx, t, body)
		reply.Index = idx
		return err
	})
	return reply.Index, err
}

// writeTimeout is the most a write may take from where it entered the
// cluster, every retry and forward included; consensus.WriteRetention is
// a multiple of it.
const writeTimeout = 30 * time.Second

// enterWrite gives a write its identity and its deadline where it enters
// the cluster, unless it has them: a write that came from another agent or
// server keeps the identity it was given there, so every copy of it is
// applied once, and its deadline (the budget its sender had left) is
// already in ctx.
func enterWrite(ctx context.Context, body any) (context.Context, context.CancelFunc) {
	if w, ok := body.(catalog.Write); ok {
		w.WriteMeta().EnsureID()
	}
	return context.WithTimeout(ctx, writeTimeout)
}

// onLeader runs local when this server leads, or calls method on the
// leader, retrying while there is none or it cannot be reached, until
// leaderWait has passed.
func (s *localServer) onLeader(ctx context.Context, method string, args, reply any, local func() error) error {
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
				return fromRemote(err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: no reachable leader after %v: %v", consensus.ErrNotLeader, leaderWait, err)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
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
func (s *localServer) callLeader(ctx, epoch context.Context, leader, method string, args, reply any) error {
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

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// leader waits (bounded) for a leader and returns "" when it is this
// server, else the leader's address.
func (s *localServer) leader(ctx context.Context) (string, error) {
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

// read answers a read here, or forwards it: to another datacenter when
// opts names one, else to the leader when it is not stale and this server
// does not lead. It returns false when it forwarded (the reply is then
// filled by the server that answered).
func (s *localServer) read(ctx context.Context, opts *rpc.QueryOptions, method string, args, reply any) (bool, error) {
	if s.remoteDC(opts.Datacenter) {
		return false, s.forwardDC(ctx, opts.Datacenter, method, args, reply)
	}
	if s.staleOK(opts) {
		return true, nil
	}
	here := false
	err := s.onLeader(ctx, method, args, reply, func() error {
		here = true
		return nil
	})
	return here, err
}

// staleOK reports whether this server may answer a read with opts from
// its own catalog without asking the leader: stale reads allowed, and the
// leader heard from recently enough.
func (s *localServer) staleOK(opts *rpc.QueryOptions) bool {
	return opts.AllowStale && s.raft.HasLeaderContact() && (opts.MaxStale <= 0 || s.raft.LastContact() <= opts.MaxStale)
}

// localHealthService answers a stale health/service read from this
// server's catalog, with a func that reports whether the answer is still
// current: until a change bears on the service, or a restore replaces the
// catalog, or the leader has been silent for longer than MaxStale. Callers
// that keep what they built from the answer reuse it while fresh says so.
// ok is false when the read may not be answered here (the caller then uses
// HealthServiceNodes).
func (s *localServer) localHealthService(ctx context.Context, q *rpc.ServiceQuery) (nodes []catalog.CheckServiceNode, fresh func() bool, ok bool, err error) {
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
func (s *localServer) blockingQuery(ctx context.Context, opts *rpc.QueryOptions, meta *rpc.QueryMeta, query func(ws memdb.WatchSet) (uint64, error)) error {
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
	wctx, cancel := context.WithTimeout(ctx, blockWait(opts.MaxWait))
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

// blockWait is how long a blocking query with wait waits: 5 m when unset,
// at most 10 m, plus up to 1/16 of jitter so that watchers woken together
// do not return together.
func blockWait(wait time.Duration) time.Duration {
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
func (s *localServer) readReady(ctx context.Context, opts *rpc.QueryOptions) error {
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

func (s *localServer) fillMeta(meta *rpc.QueryMeta) {
	meta.KnownLeader = s.raft.Leader() != ""
	meta.LastContact = s.raft.LastContact()
	meta.Server, meta.Term = s.node, s.raft.Term()
}

func (s *localServer) NodeState(ctx context.Context, node string) (*rpc.NodeStateResponse, error) {
	out := &rpc.NodeStateResponse{}
	// Anti-entropy compares with this server's own copy, wherever it is.
	if err := s.readReady(ctx, &rpc.QueryOptions{AllowStale: true}); err != nil {
		return nil, err
	}
	_, n, svcs, err := s.store.NodeServices(nil, node)
	if err != nil || n == nil {
		return out, err
	}
	_, chks, err := s.store.NodeChecks(nil, node)
	if err != nil {
		return nil, err
	}
	out.Node, out.Services, out.Checks = n, svcs, chks
	return out, nil
}

func (s *localServer) HealthServiceNodes(ctx context.Context, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error) {
	out := &rpc.CheckServiceNodesResponse{}
	if here, err := s.read(ctx, &q.QueryOptions, "Health.ServiceNodes", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, &q.QueryOptions, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, nodes, err := s.store.CheckServiceNodes(ws, q.Service, q.Tags, q.PassingOnly)
		out.Nodes = nodes
		return idx, err
	})
}

func (s *localServer) ServiceNodes(ctx context.Context, q *rpc.ServiceQuery) (*rpc.ServiceNodesResponse, error) {
	out := &rpc.ServiceNodesResponse{}
	if here, err := s.read(ctx, &q.QueryOptions, "Catalog.ServiceNodes", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, &q.QueryOptions, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, nodes, err := s.store.ServiceNodes(ws, q.Service, q.Tags)
		out.Nodes = nodes
		return idx, err
	})
}

func (s *localServer) AllServiceNodes(ctx context.Context, q *rpc.QueryOptions) (*rpc.ServiceNodesResponse, error) {
	out := &rpc.ServiceNodesResponse{}
	if here, err := s.read(ctx, q, "Catalog.AllServiceNodes", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, q, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, nodes, err := s.store.AllServiceNodes(ws)
		out.Nodes = nodes
		return idx, err
	})
}

func (s *localServer) Services(ctx context.Context, q *rpc.QueryOptions) (*rpc.ServicesResponse, error) {
	out := &rpc.ServicesResponse{}
	if here, err := s.read(ctx, q, "Catalog.Services", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, q, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, svcs, err := s.store.Services(ws)
		out.Services = svcs
		return idx, err
	})
}

func (s *localServer) Nodes(ctx context.Context, q *rpc.QueryOptions) (*rpc.NodesResponse, error) {
	out := &rpc.NodesResponse{}
	if here, err := s.read(ctx, q, "Catalog.Nodes", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, q, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, nodes, err := s.store.Nodes(ws)
		out.Nodes = nodes
		return idx, err
	})
}

func (s *localServer) AddressOwners(ctx context.Context, q *rpc.AddressQuery) (*rpc.AddressOwnersResponse, error) {
	out := &rpc.AddressOwnersResponse{}
	ip, err := netip.ParseAddr(q.Address)
	if err != nil {
		return out, fmt.Errorf("address owners: %w", err)
	}
	if here, err := s.read(ctx, &q.QueryOptions, "Catalog.AddressOwners", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, &q.QueryOptions, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, nodes, svcs, err := s.store.AddressOwners(ws, ip)
		out.Nodes, out.Services = nodes, svcs
		return idx, err
	})
}

func (s *localServer) NodeServices(ctx context.Context, q *rpc.NodeQuery) (*rpc.NodeServicesResponse, error) {
	out := &rpc.NodeServicesResponse{}
	if here, err := s.read(ctx, &q.QueryOptions, "Catalog.NodeServices", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, &q.QueryOptions, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, n, svcs, err := s.store.NodeServices(ws, q.Node)
		out.Node, out.Services = n, svcs
		return idx, err
	})
}

func (s *localServer) NodeChecks(ctx context.Context, q *rpc.NodeQuery) (*rpc.ChecksResponse, error) {
	return s.checks(ctx, &q.QueryOptions, "Health.NodeChecks", q, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return s.store.NodeChecks(ws, q.Node)
	})
}

func (s *localServer) ServiceChecks(ctx context.Context, q *rpc.ServiceQuery) (*rpc.ChecksResponse, error) {
	return s.checks(ctx, &q.QueryOptions, "Health.ServiceChecks", q, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return s.store.ServiceChecks(ws, q.Service)
	})
}

func (s *localServer) ChecksInState(ctx context.Context, q *rpc.StateQuery) (*rpc.ChecksResponse, error) {
	return s.checks(ctx, &q.QueryOptions, "Health.ChecksInState", q, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return s.store.ChecksInState(ws, q.State)
	})
}

func (s *localServer) checks(ctx context.Context, opts *rpc.QueryOptions, method string, args any,
	query func(ws memdb.WatchSet) (uint64, []*catalog.Check, error)) (*rpc.ChecksResponse, error) {
	out := &rpc.ChecksResponse{}
	if here, err := s.read(ctx, opts, method, args, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, opts, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, chks, err := query(ws)
		out.Checks = chks
		return idx, err
	})
}

// Errors cross the network as text; these prefixes bring back the
// sentinel errors the HTTP layer maps to status codes.
var remoteSentinels = []error{
	catalog.ErrInvalid, catalog.ErrNotFound, catalog.ErrBadFilter, catalog.ErrCASConflict,
	consensus.ErrNotLeader, consensus.ErrNotReady, ErrShutdown,
	ErrRateLimited, ErrTooManyBlocking, wan.ErrNoPath, wan.ErrUnreachable,
}

// fromRemote turns an endpoint's error text back into its sentinel. The
// result still unwraps to the *rpc.RemoteError: the server answered, so
// it is no transport error.
func fromRemote(err error) error {
	var re *rpc.RemoteError
	if !errors.As(err, &re) {
		return err
	}
	for _, s := range remoteSentinels {
		if strings.HasPrefix(re.Msg, s.Error()) {
			return &remoteSentinel{sentinel: s, remote: re}
		}
	}
	return err
}

// remoteSentinel is an endpoint's error recognised as one of ours.
type remoteSentinel struct {
	sentinel error
	remote   *rpc.RemoteError
}

func (e *remoteSentinel) Error() string   { return e.remote.Msg }
func (e *remoteSentinel) Unwrap() []error { return []error{e.sentinel, e.remote} }

func (s *localServer) Leader(ctx context.Context, dc string) (string, error) {
	if s.remoteDC(dc) {
		var reply string
		err := s.forwardDC(ctx, dc, "Status.Leader", &rpc.DCRequest{Datacenter: dc}, &reply)
		return reply, err
	}
	return s.raft.Leader(), nil
}

func (s *localServer) Peers(ctx context.Context, dc string) ([]string, error) {
	if s.remoteDC(dc) {
		var reply []string
		err := s.forwardDC(ctx, dc, "Status.Peers", &rpc.DCRequest{Datacenter: dc}, &reply)
		return reply, err
	}
	return s.raft.Peers()
}

// Datacenters lists the datacenters the WAN pool knows, nearest first;
// only this one when the pool is disabled.
func (s *localServer) Datacenters(ctx context.Context) ([]string, error) {
	if s.wan == nil {
		return []string{s.dc}, nil
	}
	return s.wan.Datacenters(), nil
}

// RaftStats is how far this server's log and catalog are, by Raft's own
// count (which a snapshot install moves too).
func (s *localServer) RaftStats() *rpc.RaftStats {
	return raftStats(s.raft)
}

// raftStats is how far server r is, by Raft's own count.
func raftStats(r *consensus.Server) *rpc.RaftStats {
	return &rpc.RaftStats{LastIndex: r.LastIndex(), AppliedIndex: r.RaftAppliedIndex(), LastContact: r.LastContact(), Term: r.Term()}
}

// RaftRemovePeer takes the server req names out of the Raft configuration,
// on the leader (forwarded there). A name that is not in the
// configuration is an error, as in Consul: it is a human's request, most
// likely mistyped. A live server removed this way comes back at the
// leader's next reconcile; a dead one stays out.
func (s *localServer) RaftRemovePeer(ctx context.Context, req *rpc.RemovePeerRequest) error {
	var reply rpc.Empty
	return s.onLeader(ctx, "Operator.RaftRemovePeer", req, &reply, func() error {
		servers, _, err := s.raft.Configuration()
		if err != nil {
			return err
		}
		for _, srv := range servers {
			if (req.ID != "" && srv.ID == req.ID) || (req.ID == "" && srv.Address == req.Address) {
				if err := s.raft.RemoveServer(srv.ID); err != nil {
					if s.logger != nil {
						s.logger.Warn("failed to remove raft peer", "peer_id", srv.ID, "error", err)
					}
					return err
				}
				if s.logger != nil {
					s.logger.Warn("removed raft peer", "peer_id", srv.ID, "address", srv.Address)
				}
				return nil
			}
		}
		if req.ID != "" {
			return fmt.Errorf("id %q was not found in the Raft configuration", req.ID)
		}
		return fmt.Errorf("address %q was not found in the Raft configuration", req.Address)
	})
}

// AutopilotHealth returns the leader's autopilot view of the servers
// (forwarded to the leader).
func (s *localServer) AutopilotHealth(ctx context.Context) (*rpc.AutopilotHealth, error) {
	out := &rpc.AutopilotHealth{}
	err := s.onLeader(ctx, "Operator.AutopilotHealth", &rpc.Empty{}, out, func() error {
		h := s.health()
		if h == nil {
			return errors.New("autopilot: the leader has not looked at its servers yet in its term; try again in a second")
		}
		*out = *h
		return nil
	})
	return out, err
}
