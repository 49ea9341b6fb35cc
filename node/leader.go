package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// serfHealthName and serfHealthOutput describe the built-in node check,
// as Consul spells them.
const (
	serfHealthName   = "Serf Health Status"
	serfHealthOutput = "Agent alive and reachable"
)

// leaderDuties runs while this server leads (consensus.Config.LeaderFunc).
func (a *Agent) leaderDuties(ctx context.Context) {
	r := &reaper{
		store:   a.store,
		servers: a.servers,
		logger:  a.logger.With("duty", "reap"),
		since:   map[reapKey]time.Time{},
		now:     time.Now,
	}
	// The reconcile loop also keeps this server's own node and its
	// serfHealth in the catalog, as for every member.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.run(ctx)
	}()
	a.reconcileLoop(ctx)
	wg.Wait()
}

// reapKey names a check whose service may be reaped.
type reapKey struct{ node, checkID string }

// reaper deregisters services whose check has been critical for its
// deregister_critical_service_after, for the nodes no live agent looks
// after: external nodes (no serfHealth) and failed ones (serfHealth
// critical: a crashed host's checks are stale, so they count as critical).
// A live agent reaps its own services, so anti-entropy never undoes a
// reap. The clock of each check starts when the leader first sees it
// critical, so a new leader starts the clocks afresh: a reap may come
// later after a leader change, never earlier.
type reaper struct {
	store   *catalog.Store
	servers rpc.Caller
	logger  *slog.Logger
	since   map[reapKey]time.Time
	now     func() time.Time
}

type reapCandidate struct {
	key       reapKey
	serviceID string
	after     time.Duration
}

func (r *reaper) run(ctx context.Context) {
	for {
		ws := memdb.NewWatchSet()
		cands, err := r.candidates(ws)
		if err != nil {
			r.logger.Warn("find services to reap", "error", err)
		}
		next := r.reapDue(ctx, cands)
		// Wake on a change to the critical checks, or when the next
		// candidate falls due.
		wctx, cancel := context.WithCancel(ctx)
		var timer *time.Timer
		if !next.IsZero() {
			timer = time.AfterFunc(max(time.Until(next), 0), cancel)
		}
		ws.WatchCtx(wctx)
		if timer != nil {
			timer.Stop()
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// reapDue deregisters the candidates whose time has come and returns when
// the next one falls due (zero: none pending).
func (r *reaper) reapDue(ctx context.Context, cands []reapCandidate) time.Time {
	now := r.now()
	seen := make(map[reapKey]bool, len(cands))
	var next time.Time
	for _, c := range cands {
		seen[c.key] = true
		t0, ok := r.since[c.key]
		if !ok {
			t0 = now
			r.since[c.key] = now
		}
		due := t0.Add(c.after)
		if now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		_, err := server.Deregister.Call(ctx, r.servers, &catalog.DeregisterRequest{Node: c.key.node, ServiceID: c.serviceID})
		if err != nil {
			r.logger.Warn("reap service", "node", c.key.node, "service_id", c.serviceID, "error", err)
			retry := now.Add(time.Second)
			if next.IsZero() || retry.Before(next) {
				next = retry
			}
			continue
		}
		r.logger.Info("deregistered a service critical for longer than its deregister_critical_service_after",
			"node", c.key.node, "service_id", c.serviceID, "check", c.key.checkID, "after", c.after)
		delete(r.since, c.key)
	}
	for k := range r.since {
		if !seen[k] {
			delete(r.since, k) // recovered or gone: its clock starts over
		}
	}
	return next
}

// candidates lists the service checks with deregister_critical_service_after
// that count as critical on nodes the leader looks after.
func (r *reaper) candidates(ws memdb.WatchSet) ([]reapCandidate, error) {
	_, crit, err := r.store.ChecksInState(ws, catalog.HealthCritical)
	if err != nil {
		return nil, err
	}
	var out []reapCandidate
	failedNodes := map[string]bool{}
	agentNodes := map[string]bool{}
	for _, c := range crit {
		if c.CheckID == catalog.SerfCheckID {
			failedNodes[c.Node] = true
		}
	}
	for _, c := range crit {
		if c.ServiceID == "" || c.Definition.DeregisterCriticalServiceAfter <= 0 || failedNodes[c.Node] {
			continue
		}
		isAgent, ok := agentNodes[c.Node]
		if !ok {
			h, err := r.store.Check(c.Node, catalog.SerfCheckID)
			if err != nil {
				return nil, err
			}
			isAgent = h != nil
			agentNodes[c.Node] = isAgent
		}
		if !isAgent {
			out = append(out, reapCandidate{reapKey{c.Node, c.CheckID}, c.ServiceID, c.Definition.DeregisterCriticalServiceAfter})
		}
	}
	for node := range failedNodes {
		_, checks, err := r.store.NodeChecks(ws, node)
		if err != nil {
			return nil, err
		}
		for _, c := range checks {
			if c.ServiceID != "" && c.Definition.DeregisterCriticalServiceAfter > 0 {
				out = append(out, reapCandidate{reapKey{c.Node, c.CheckID}, c.ServiceID, c.Definition.DeregisterCriticalServiceAfter})
			}
		}
	}
	return out, nil
}
