package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/node/rpc"
)

// DutiesConfig is what the leader's duties need.
type DutiesConfig struct {
	// NodeID, NodeName and Datacenter are this server's.
	NodeID, NodeName, Datacenter string
	Raft                         *consensus.Server
	Store                        *catalog.Store
	// Servers takes the duties' catalog writes: this server's own methods,
	// so they go through the one validation and the write path as any
	// other.
	Servers rpc.Caller
	// Pool asks the other servers for their Raft stats (autopilot).
	Pool *rpc.Pool
	// Members lists the LAN gossip pool's members; Events carries its
	// changes, and EventsDropped reports (and clears) whether changes were
	// dropped because the queue was full: then every member is looked at.
	Members       func() []gossip.Member
	Events        <-chan gossip.Event
	EventsDropped *atomic.Bool
	// AutopilotFile is the config files' autopilot block, which holds
	// until one is stored.
	AutopilotFile catalog.AutopilotConfig
	// ServerFailGrace is how long a failed server keeps its vote (0: 30 s).
	ServerFailGrace time.Duration
	// Clock times the duties' graces and schedules (nil: the wall clock).
	Clock  clock.Clock
	Logger *slog.Logger
}

// Duties runs the leader's duties while this server leads (Run), and
// holds what they learn that other parts ask for: autopilot's view of the
// servers (Health) and whether every server reads a log format
// (ServersRead). It is safe for concurrent use.
type Duties struct {
	cfg    DutiesConfig
	logger *slog.Logger
	clock  clock.Clock
	// autopilot is the latest look at the servers.
	autopilot autopilotState
}

// NewDuties returns the duties over cfg; Run starts them.
func NewDuties(cfg DutiesConfig) *Duties {
	if cfg.ServerFailGrace <= 0 {
		cfg.ServerFailGrace = serverFailGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Wall{}
	}
	return &Duties{cfg: cfg, logger: cfg.Logger, clock: cfg.Clock}
}

// Health is autopilot's latest look at the servers: nil until it has
// looked once in this leadership term.
func (l *Duties) Health() *rpc.AutopilotHealth { return l.autopilot.get() }

// serfHealthName and the outputs describe the built-in node check, as
// Consul spells them.
const (
	serfHealthName         = "Serf Health Status"
	serfHealthOutput       = "Agent alive and reachable"
	serfHealthFailedOutput = "Agent not live or unreachable"
)

// Run carries out the leader's duties until ctx ends (when leadership
// does): the reconcile loop (members into the catalog and the Raft
// configuration), autopilot, and the reaper, each in a goroutine of its
// own, so that a slow one (autopilot asking a hung server) delays none of
// the others. It is consensus.Config.LeaderFunc.
func (l *Duties) Run(ctx context.Context) {
	r := &reaper{
		store:   l.cfg.Store,
		servers: l.cfg.Servers,
		logger:  l.logger.With("duty", "reap"),
		since:   map[reapKey]time.Time{},
		clock:   l.clock,
	}
	l.autopilot.set(nil) // a view from an earlier term is no view
	var wg sync.WaitGroup
	wg.Go(func() { r.run(ctx) })
	wg.Go(func() { l.autopilotLoop(ctx) })
	// The reconcile loop also keeps this server's own node and its
	// serfHealth in the catalog, as for every member.
	l.reconcileLoop(ctx)
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
	clock   clock.Clock
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
		var timer clock.Timer
		if !next.IsZero() {
			timer = r.clock.AfterFunc(max(next.Sub(r.clock.Now()), 0), cancel)
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
	now := r.clock.Now()
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
		_, err := Deregister.Call(ctx, r.servers, &catalog.DeregisterRequest{Node: c.key.node, ServiceID: c.serviceID})
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
