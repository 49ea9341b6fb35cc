package node

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/backoff"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
	"golang.org/x/sync/errgroup"
)

// nodeInfo is how this agent's node appears in the catalog.
type nodeInfo struct {
	ID, Name, Address, Datacenter string
	TaggedAddresses, Meta         map[string]string
}

// syncer pushes the local state to the catalog: the changes at once, the
// whole of it (compared against what the catalog holds) at an interval, so
// that anything lost or changed behind the agent's back is put right.
type syncer struct {
	local    *localState
	servers  rpc.Caller
	node     nodeInfo
	logger   *slog.Logger
	interval time.Duration // full sync period, before jitter

	triggerCh chan struct{}
	// frozen stops all pushes: a leaving agent must not put back the node
	// the leader deregisters.
	frozen atomic.Bool

	doneMu  sync.Mutex // guards doneGen and doneCh
	doneGen uint64
	doneCh  chan struct{} // closed and replaced when doneGen moves
}

func newSyncer(local *localState, servers rpc.Caller, node nodeInfo, interval time.Duration, logger *slog.Logger) *syncer {
	return &syncer{
		local:     local,
		servers:   servers,
		node:      node,
		logger:    logger,
		interval:  interval,
		triggerCh: make(chan struct{}, 1),
		doneCh:    make(chan struct{}),
	}
}

// trigger asks for a sync of the changes; it never blocks.
func (s *syncer) trigger() {
	select {
	case s.triggerCh <- struct{}{}:
	default:
	}
}

// waitFor blocks until the catalog holds every change up to gen, or ctx
// ends; it reports which.
func (s *syncer) waitFor(ctx context.Context, gen uint64) bool {
	for {
		s.doneMu.Lock()
		done, ch := s.doneGen >= gen, s.doneCh
		s.doneMu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (s *syncer) markDone(gen uint64) {
	s.doneMu.Lock()
	defer s.doneMu.Unlock()
	if gen > s.doneGen {
		s.doneGen = gen
		close(s.doneCh)
		s.doneCh = make(chan struct{})
	}
}

// run is the sync loop; it returns when ctx ends.
func (s *syncer) run(ctx context.Context) {
	retry := backoff.Backoff{Min: 250 * time.Millisecond, Max: 30 * time.Second}
	full := true
	fullTimer := time.NewTimer(s.jitter())
	defer fullTimer.Stop()
	// Held-back check outputs are flushed on this tick once due; with no
	// output interval nothing is held back and there is no tick.
	var flushCh <-chan time.Time
	if s.local.outputInterval > 0 {
		flushTick := time.NewTicker(s.flushPeriod())
		defer flushTick.Stop()
		flushCh = flushTick.C
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		var err error
		if full {
			err = s.syncFull(rctx)
		} else {
			err = s.syncChanges(rctx)
		}
		cancel()

		var retryCh <-chan time.Time
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			wait := retry.Next()
			s.logger.Warn("catalog sync failed; will retry", "error", err, "retry_in", wait)
			retryCh = time.After(wait)
		default:
			retry.Reset()
			full = false
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.triggerCh:
			case <-retryCh:
			case <-fullTimer.C:
				full = true
				fullTimer.Reset(s.jitter())
			case <-flushCh:
				s.local.mu.Lock()
				idle := s.local.deferred == 0
				s.local.mu.Unlock()
				if idle {
					continue wait
				}
			}
			break
		}
	}
}

// flushPeriod is how often held-back check outputs are looked at: a fifth
// of check_update_interval, within [100ms, 30s].
func (s *syncer) flushPeriod() time.Duration {
	return min(max(s.local.outputInterval/5, 100*time.Millisecond), 30*time.Second)
}

// jitter is the full-sync interval plus up to a quarter of it, so agents
// started together do not sync together.
func (s *syncer) jitter() time.Duration {
	return s.interval + rand.N(s.interval/4+1)
}

// syncFull compares the local state with the catalog, marks every
// difference, and pushes them.
func (s *syncer) syncFull(ctx context.Context) error {
	if s.frozen.Load() {
		return nil
	}
	state, err := server.NodeState.Call(ctx, s.servers, &rpc.NodeQuery{Node: s.node.Name})
	if err != nil {
		return err
	}
	node, svcs, chks := state.Node, state.Services, state.Checks
	remoteSvcs := map[string]*catalog.Service{}
	for _, svc := range svcs {
		remoteSvcs[svc.ID] = svc
	}
	remoteChks := map[string]*catalog.Check{}
	for _, c := range chks {
		remoteChks[c.CheckID] = c
	}
	l := s.local
	l.mu.Lock()
	l.nodeInSync = node != nil && s.sameNode(node)
	for id, ls := range l.services {
		r, ok := remoteSvcs[id]
		ls.inSync = ok && sameService(ls.svc, r)
	}
	for id := range remoteSvcs {
		if _, ok := l.services[id]; !ok {
			l.removedServices[id] = struct{}{}
		}
	}
	for id, lc := range l.checks {
		r, ok := remoteChks[id]
		lc.defSynced = ok && sameCheckDefinition(lc.chk, r)
		sameOutput := r != nil && r.Output == lc.chk.Output
		// A held-back output counts as in sync until it is due.
		lc.inSync = lc.defSynced && r.Status == lc.chk.Status && (sameOutput || !l.outputDueLocked(lc))
	}
	for id := range remoteChks {
		if _, ok := l.checks[id]; !ok && id != catalog.SerfCheckID {
			l.removedChecks[id] = struct{}{}
		}
	}
	l.mu.Unlock()
	return s.syncChanges(ctx)
}

func (s *syncer) sameNode(n *catalog.Node) bool {
	return n.ID == s.node.ID && n.Address == s.node.Address && n.Datacenter == s.node.Datacenter &&
		maps.Equal(n.Meta, s.node.Meta) && maps.Equal(n.TaggedAddresses, s.node.TaggedAddresses)
}

// pushItem is one service or check to push, with the version it had.
type pushSvc struct {
	svc     *catalog.Service
	version uint64
	checks  []pushChk
}

type pushChk struct {
	chk     *catalog.Check
	version uint64
}

// syncChanges pushes what the local state marks out of sync. It holds no
// lock while it talks to the servers; an item changed meanwhile stays
// marked and goes in the next round.
func (s *syncer) syncChanges(ctx context.Context) error {
	if s.frozen.Load() {
		return nil
	}
	l := s.local
	l.mu.Lock()
	gen := l.gen
	nodeInSync := l.nodeInSync
	removedSvcs := slices.Collect(maps.Keys(l.removedServices))
	removedChks := slices.Collect(maps.Keys(l.removedChecks))
	// The checks by service, so a round is linear in the local state.
	svcChecks := map[string][]*localCheck{}
	for _, lc := range l.checks {
		if lc.chk.ServiceID != "" {
			svcChecks[lc.chk.ServiceID] = append(svcChecks[lc.chk.ServiceID], lc)
		}
	}
	var svcs []pushSvc
	inSvcPush := map[string]bool{}
	for _, ls := range l.services {
		if ls.inSync {
			continue
		}
		p := pushSvc{svc: copyService(ls.svc), version: ls.version}
		for _, lc := range svcChecks[ls.svc.ID] {
			c := *lc.chk
			p.checks = append(p.checks, pushChk{&c, lc.version})
			inSvcPush[c.CheckID] = true
		}
		svcs = append(svcs, p)
	}
	var fullChks, statusChks []pushChk
	for id, lc := range l.checks {
		if lc.inSync && lc.outputDeferred && l.outputDueLocked(lc) {
			lc.inSync = false // its held-back output is due
		}
		if lc.inSync || inSvcPush[id] {
			continue
		}
		c := *lc.chk
		if lc.defSynced {
			statusChks = append(statusChks, pushChk{&c, lc.version})
		} else {
			fullChks = append(fullChks, pushChk{&c, lc.version})
		}
	}
	l.mu.Unlock()

	var partial atomic.Bool
	if !nodeInSync {
		if _, err := server.Register.Call(ctx, s.servers, s.registration(false)); err != nil {
			return err
		}
		l.mu.Lock()
		l.nodeInSync = true
		l.mu.Unlock()
	}
	// Each kind in turn (removals before additions), each kind's writes
	// concurrently.
	if err := pushEach(ctx, removedSvcs, func(ctx context.Context, id string) error {
		if _, err := server.Deregister.Call(ctx, s.servers, &catalog.DeregisterRequest{Node: s.node.Name, ServiceID: id}); err != nil {
			return err
		}
		l.mu.Lock()
		delete(l.removedServices, id)
		l.mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	if err := pushEach(ctx, removedChks, func(ctx context.Context, id string) error {
		if _, err := server.Deregister.Call(ctx, s.servers, &catalog.DeregisterRequest{Node: s.node.Name, CheckID: id}); err != nil {
			return err
		}
		l.mu.Lock()
		delete(l.removedChecks, id)
		l.mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	if err := pushEach(ctx, svcs, func(ctx context.Context, p pushSvc) error {
		req := s.registration(true)
		req.Service = p.svc
		for _, c := range p.checks {
			req.Checks = append(req.Checks, c.chk)
		}
		if _, err := server.Register.Call(ctx, s.servers, req); err != nil {
			if s.refused(err, "service", p.svc.ID) {
				partial.Store(true)
				return nil
			}
			return err
		}
		l.mu.Lock()
		if ls, ok := l.services[p.svc.ID]; ok && ls.version == p.version {
			ls.inSync = true
		}
		markChecks(l, p.checks)
		l.mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	if err := pushEach(ctx, fullChks, func(ctx context.Context, c pushChk) error {
		req := s.registration(true)
		req.Checks = []*catalog.Check{c.chk}
		if _, err := server.Register.Call(ctx, s.servers, req); err != nil {
			if s.refused(err, "check", c.chk.CheckID) {
				partial.Store(true)
				l.mu.Lock()
				l.dropDeferralLocked(c.chk.CheckID)
				l.mu.Unlock()
				return nil
			}
			return err
		}
		l.mu.Lock()
		markChecks(l, []pushChk{c})
		l.mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	if err := pushEach(ctx, statusChks, func(ctx context.Context, c pushChk) error {
		_, err := server.UpdateCheck.Call(ctx, s.servers, &catalog.CheckStatusUpdate{
			Node: s.node.Name, CheckID: c.chk.CheckID, Status: c.chk.Status, Output: c.chk.Output,
		})
		if errors.Is(err, catalog.ErrNotFound) {
			// The catalog lost the check: send it whole next round.
			l.mu.Lock()
			if lc, ok := l.checks[c.chk.CheckID]; ok {
				lc.defSynced = false
			}
			l.mu.Unlock()
			s.trigger()
			partial.Store(true)
			return nil
		}
		if err != nil {
			return err
		}
		l.mu.Lock()
		markChecks(l, []pushChk{c})
		l.mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	if !partial.Load() {
		// Only a round that pushed everything may wake those waiting for
		// the catalog to hold their change.
		s.markDone(gen)
	}
	return nil
}

// pushParallel is how many catalog writes a sync round keeps in flight.
// The leader puts the writes that arrive together into one Raft log write,
// so a host that registers many services at once (or a full sync after a
// server restore) is synced at the cluster's write rate instead of one
// round trip per item.
const pushParallel = 16

// pushEach runs push on every item, pushParallel at a time. The first
// error stops new pushes and is returned once those in flight are done;
// so is the end of ctx before every item was pushed (once all were, a
// context ending after them is no failure).
func pushEach[T any](ctx context.Context, items []T, push func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pushParallel)
	started := 0
	for _, it := range items {
		if gctx.Err() != nil {
			break
		}
		// Go waits for a free slot, which an error frees too: a push that
		// gets one after the first error (or the end of ctx) does not start.
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return push(gctx, it)
		})
		started++
	}
	err := g.Wait()
	if err == nil && started < len(items) {
		err = ctx.Err()
	}
	return err
}

// refused reports whether the catalog refused an item as malformed. Such
// an item stays out of sync (the next full sync tries it again) but must
// not hold up the others, so the caller moves on.
func (s *syncer) refused(err error, kind, id string) bool {
	if !errors.Is(err, catalog.ErrInvalid) && !errors.Is(err, catalog.ErrNotFound) {
		return false
	}
	s.logger.Error("the catalog refused a local "+kind, "id", id, "error", err)
	return true
}

// markChecks marks pushed checks in sync unless they changed since; the
// caller holds l.mu.
func markChecks(l *localState, pushed []pushChk) {
	now := l.now()
	for _, c := range pushed {
		lc, ok := l.checks[c.chk.CheckID]
		if !ok {
			continue
		}
		if lc.chk.Output == c.chk.Output {
			if lc.outputDeferred {
				l.deferred--
			}
			lc.outputSyncedAt, lc.outputDeferred = now, false
		}
		if lc.version == c.version {
			lc.defSynced, lc.inSync = true, true
		}
	}
}

// registration is the node part of a register request.
func (s *syncer) registration(skipNode bool) *catalog.RegisterRequest {
	return registration(s.node, skipNode)
}

func registration(n nodeInfo, skipNode bool) *catalog.RegisterRequest {
	return &catalog.RegisterRequest{
		ID:              n.ID,
		Node:            n.Name,
		Address:         n.Address,
		Datacenter:      n.Datacenter,
		TaggedAddresses: n.TaggedAddresses,
		NodeMeta:        n.Meta,
		SkipNodeUpdate:  skipNode,
	}
}

func copyService(s *catalog.Service) *catalog.Service {
	c := *s
	return &c
}
