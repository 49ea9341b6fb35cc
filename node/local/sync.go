package local

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/backoff"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
	"golang.org/x/sync/errgroup"
)

// Anti-entropy: the State pushes its changes to the catalog at once, and
// the whole of itself (compared against what the catalog holds) at an
// interval, so that anything lost or changed behind the agent's back is
// put right. Every access to the state is under its own lock; none is held
// while talking to the servers.

// Trigger asks for a sync of the changes; it never blocks.
func (s *State) Trigger() {
	select {
	case s.triggerCh <- struct{}{}:
	default:
	}
}

// WaitFor blocks until the catalog holds every change up to gen, or ctx
// ends; it reports which.
func (s *State) WaitFor(ctx context.Context, gen uint64) bool {
	for {
		s.mu.Lock()
		done, ch := s.doneGen >= gen, s.doneCh
		s.mu.Unlock()
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

func (s *State) markDone(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen > s.doneGen {
		s.doneGen = gen
		close(s.doneCh)
		s.doneCh = make(chan struct{})
	}
}

// Freeze stops every push for good: a leaving agent must not put back
// the node the leader deregisters.
func (s *State) Freeze() { s.frozen.Store(true) }

// Run is the sync loop; it returns when ctx ends.
func (s *State) Run(ctx context.Context) {
	retry := backoff.Backoff{Min: 250 * time.Millisecond, Max: 30 * time.Second}
	full := true
	fullCh, fullTimer := clock.After(s.cfg.Clock, s.jitter())
	var retryTimer clock.Timer
	defer func() {
		fullTimer.Stop()
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}()
	// Held-back check outputs are flushed on this tick once due; with no
	// output interval nothing is held back and there is no tick.
	var flushCh <-chan time.Time
	if s.outputInterval > 0 {
		flushTick := clock.NewTicker(s.cfg.Clock, s.flushPeriod())
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
			s.cfg.Logger.Warn("catalog sync failed; will retry", "error", err, "retry_in", wait)
			if retryTimer != nil {
				retryTimer.Stop()
			}
			retryCh, retryTimer = clock.After(s.cfg.Clock, wait)
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
			case <-fullCh:
				full = true
				fullCh, fullTimer = clock.After(s.cfg.Clock, s.jitter())
			case <-flushCh:
				s.mu.Lock()
				idle := s.deferred == 0
				s.mu.Unlock()
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
func (s *State) flushPeriod() time.Duration {
	return min(max(s.outputInterval/5, 100*time.Millisecond), 30*time.Second)
}

// jitter is the full-sync interval plus up to a quarter of it, so agents
// started together do not sync together.
func (s *State) jitter() time.Duration {
	return s.cfg.FullSyncInterval + rand.N(s.cfg.FullSyncInterval/4+1)
}

// syncFull compares the local state with the catalog, marks every
// difference, and pushes them.
func (s *State) syncFull(ctx context.Context) error {
	if s.frozen.Load() {
		return nil
	}
	state, err := server.NodeState.Call(ctx, s.cfg.Servers, &rpc.NodeQuery{Node: s.cfg.Node.Name})
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
	l := s
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

func (s *State) sameNode(n *catalog.Node) bool {
	want := s.cfg.Node
	return n.ID == want.ID && n.Address == want.Address && n.Datacenter == want.Datacenter &&
		maps.Equal(n.Meta, want.Meta) && maps.Equal(n.TaggedAddresses, want.TaggedAddresses)
}

// pushSvc and pushChk are a service or check to push, with the version it had.
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
func (s *State) syncChanges(ctx context.Context) error {
	if s.frozen.Load() {
		return nil
	}
	l := s
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
		if _, err := server.Register.Call(ctx, s.cfg.Servers, s.registration(false)); err != nil {
			return err
		}
		l.mu.Lock()
		l.nodeInSync = true
		l.mu.Unlock()
	}
	// Each kind in turn (removals before additions), each kind's writes
	// concurrently.
	if err := pushEach(ctx, removedSvcs, func(ctx context.Context, id string) error {
		if _, err := server.Deregister.Call(ctx, s.cfg.Servers, &catalog.DeregisterRequest{Node: s.cfg.Node.Name, ServiceID: id}); err != nil {
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
		if _, err := server.Deregister.Call(ctx, s.cfg.Servers, &catalog.DeregisterRequest{Node: s.cfg.Node.Name, CheckID: id}); err != nil {
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
		if _, err := server.Register.Call(ctx, s.cfg.Servers, req); err != nil {
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
		if _, err := server.Register.Call(ctx, s.cfg.Servers, req); err != nil {
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
		_, err := server.UpdateCheck.Call(ctx, s.cfg.Servers, &catalog.CheckStatusUpdate{
			Node: s.cfg.Node.Name, CheckID: c.chk.CheckID, Status: c.chk.Status, Output: c.chk.Output,
		})
		if errors.Is(err, catalog.ErrNotFound) {
			// The catalog lost the check: send it whole next round.
			l.mu.Lock()
			if lc, ok := l.checks[c.chk.CheckID]; ok {
				lc.defSynced = false
			}
			l.mu.Unlock()
			s.Trigger()
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
func (s *State) refused(err error, kind, id string) bool {
	if !errors.Is(err, catalog.ErrInvalid) && !errors.Is(err, catalog.ErrNotFound) {
		return false
	}
	s.cfg.Logger.Error("the catalog refused a local "+kind, "id", id, "error", err)
	return true
}

// markChecks marks pushed checks in sync unless they changed since; the
// caller holds l.mu.
func markChecks(l *State, pushed []pushChk) {
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
func (s *State) registration(skipNode bool) *catalog.RegisterRequest {
	return registration(s.cfg.Node, skipNode)
}

// registration is a register request for node n alone (skipNode: the
// node part of one that carries a service or check).
func registration(n Node, skipNode bool) *catalog.RegisterRequest {
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
