package local

import (
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
)

// localService is a service instance registered with this agent.
type localService struct {
	svc     *catalog.Service // Node is empty: the agent's node is implied
	inSync  bool
	version uint64
}

// Check is a check the agent registers: the catalog's row (Node empty:
// the agent's node is implied) and, for one from a definition, the
// definition it was built from (nil for maintenance checks).
type Check struct {
	Check *catalog.Check
	Def   *config.CheckDefinition
}

// localCheck is a check registered with this agent.
type localCheck struct {
	chk *catalog.Check // Node is empty
	def *config.CheckDefinition
	// defSynced: the catalog has this definition, so a status change can go
	// as a cheap status update. inSync: the catalog has the status too.
	defSynced bool
	inSync    bool
	version   uint64
	// outputSyncedAt is when the catalog last took this check's output;
	// outputDeferred marks an output-only change held back until
	// outputSyncedAt + the output interval.
	outputSyncedAt time.Time
	outputDeferred bool
	// criticalSince is when the check last turned critical (zero while it
	// is not), for deregister_critical_service_after.
	criticalSince time.Time
}

// State is what this agent has registered, and what of it the catalog is
// known to hold; it keeps the catalog in line with it (anti-entropy, see
// Run). It is the one owner of its lock. It is safe for concurrent use.
type State struct {
	cfg Config
	// outputInterval is check_update_interval: the least time between two
	// writes of a check whose only change is its output (0: no limit).
	outputInterval time.Duration
	now            func() time.Time

	triggerCh chan struct{}
	// frozen stops all pushes: a leaving agent must not put back the node
	// the leader deregisters.
	frozen atomic.Bool

	mu       sync.Mutex // guards the fields below
	services map[string]*localService
	checks   map[string]*localCheck
	// removed services and checks wait here until the catalog forgets them.
	removedServices map[string]struct{}
	removedChecks   map[string]struct{}
	nodeInSync      bool
	// deferred counts checks with a held-back output.
	deferred int
	// versions stamps every change of a service or check.
	versions uint64
	// gen counts changes; doneGen is the latest the catalog holds all of,
	// and doneCh closes (and is replaced) when doneGen moves.
	gen     uint64
	doneGen uint64
	doneCh  chan struct{}
}

// DefaultFullSyncInterval is how often the whole state is compared with
// the catalog when Config leaves it unset.
const DefaultFullSyncInterval = time.Minute

// Config is what a State needs.
type Config struct {
	// Node is how the agent's node appears in the catalog.
	Node Node
	// Servers takes the catalog writes.
	Servers rpc.Caller
	// OutputInterval is check_update_interval (0: no limit).
	OutputInterval time.Duration
	// FullSyncInterval is how often the whole state is compared with the
	// catalog (plus up to a quarter of it as jitter; 0: the default).
	FullSyncInterval time.Duration
	// Clock times the checks' critical spells, output intervals and the
	// sync's schedule (nil: the wall clock).
	Clock  clock.Clock
	Logger *slog.Logger
}

// Node is how the agent's node appears in the catalog.
type Node struct {
	ID, Name, Address, Datacenter string
	TaggedAddresses, Meta         map[string]string
}

// New returns an empty State. It starts nothing: Run syncs it.
func New(cfg Config) *State {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Wall{}
	}
	if cfg.FullSyncInterval <= 0 {
		cfg.FullSyncInterval = DefaultFullSyncInterval
	}
	return &State{
		cfg:            cfg,
		outputInterval: cfg.OutputInterval,
		now:            cfg.Clock.Now,
		triggerCh:      make(chan struct{}, 1),
		doneCh:         make(chan struct{}),
		// gen 1 is the node itself: the first sync registers it.
		gen:             1,
		services:        map[string]*localService{},
		checks:          map[string]*localCheck{},
		removedServices: map[string]struct{}{},
		removedChecks:   map[string]struct{}{},
	}
}

// changed bumps the generation; callers hold mu. It returns the new gen.
func (l *State) changedLocked() uint64 {
	l.gen++
	return l.gen
}

// AddService adds or replaces a service and its checks in one step, so
// the sync never sees the service without them. It returns the change's
// gen. The State keeps svc and the checks: the caller does not change
// them afterwards.
func (l *State) AddService(svc *catalog.Service, checks []*Check) uint64 {
	ls := &localService{svc: svc}
	chks := make([]*localCheck, len(checks))
	for i, c := range checks {
		chks[i] = &localCheck{chk: c.Check, def: c.Def}
	}
	l.mu.Lock()
	ls.version = l.nextVersionLocked()
	delete(l.removedServices, ls.svc.ID)
	l.services[ls.svc.ID] = ls
	for _, c := range chks {
		l.putCheckLocked(c)
	}
	gen := l.changedLocked()
	l.mu.Unlock()
	l.Trigger()
	return gen
}

func (l *State) putCheckLocked(c *localCheck) {
	if old, ok := l.checks[c.chk.CheckID]; ok {
		if old.outputDeferred {
			l.deferred--
		}
		// Keep the status a re-registration did not set explicitly.
		if c.def != nil && c.def.Status == "" && sameCheckDefinition(old.chk, c.chk) {
			c.chk.Status, c.chk.Output = old.chk.Status, old.chk.Output
		}
	}
	if c.chk.Status == catalog.HealthCritical {
		c.criticalSince = l.now()
		if old, ok := l.checks[c.chk.CheckID]; ok && !old.criticalSince.IsZero() {
			c.criticalSince = old.criticalSince
		}
	}
	c.version = l.nextVersionLocked()
	delete(l.removedChecks, c.chk.CheckID)
	l.checks[c.chk.CheckID] = c
}

// nextVersionLocked stamps a change. Versions come from one counter that
// only grows, so an item removed and added again never carries the
// version of a push still in flight for its predecessor.
func (l *State) nextVersionLocked() uint64 {
	l.versions++
	return l.versions
}

// AddCheck adds or replaces one check (kept as AddService keeps its).
func (l *State) AddCheck(c *Check) uint64 {
	l.mu.Lock()
	l.putCheckLocked(&localCheck{chk: c.Check, def: c.Def})
	gen := l.changedLocked()
	l.mu.Unlock()
	l.Trigger()
	return gen
}

// RemoveService removes a service and its checks. It reports false when
// there was no such service.
func (l *State) RemoveService(id string) (uint64, bool) {
	l.mu.Lock()
	if _, ok := l.services[id]; !ok {
		l.mu.Unlock()
		return 0, false
	}
	delete(l.services, id)
	l.removedServices[id] = struct{}{}
	for cid, c := range l.checks {
		if c.chk.ServiceID == id {
			l.removeCheckLocked(cid)
		}
	}
	gen := l.changedLocked()
	l.mu.Unlock()
	l.Trigger()
	return gen, true
}

func (l *State) removeCheckLocked(id string) {
	if c := l.checks[id]; c != nil {
		if c.outputDeferred {
			l.deferred--
		}
	}
	delete(l.checks, id)
	l.removedChecks[id] = struct{}{}
}

// RemoveCheck removes one check; false when there was none.
func (l *State) RemoveCheck(id string) (uint64, bool) {
	l.mu.Lock()
	if _, ok := l.checks[id]; !ok {
		l.mu.Unlock()
		return 0, false
	}
	l.removeCheckLocked(id)
	gen := l.changedLocked()
	l.mu.Unlock()
	l.Trigger()
	return gen, true
}

// UpdateCheck sets a check's status and output. A call that changes
// neither changes nothing, so a steady heartbeat costs no write. It
// reports whether there is such a check and whether it changed.
func (l *State) UpdateCheck(id, status, output string) (gen uint64, found, changed bool) {
	l.mu.Lock()
	c, ok := l.checks[id]
	if !ok {
		l.mu.Unlock()
		return 0, false, false
	}
	if c.chk.Status == status && c.chk.Output == output {
		gen := l.gen
		l.mu.Unlock()
		return gen, true, false
	}
	nc := *c.chk
	outputOnly := nc.Status == status
	switch {
	case status == catalog.HealthCritical && nc.Status != catalog.HealthCritical:
		c.criticalSince = l.now()
	case status != catalog.HealthCritical:
		c.criticalSince = time.Time{}
	}
	nc.Status, nc.Output = status, output
	c.chk = &nc
	c.version = l.nextVersionLocked()
	if outputOnly && l.outputInterval > 0 && l.now().Sub(c.outputSyncedAt) < l.outputInterval {
		// Visible in agent/checks now; written to the catalog by a full
		// sync once the interval has passed, so a check whose output
		// carries a timestamp does not write every run.
		if !c.outputDeferred {
			c.outputDeferred = true
			l.deferred++
		}
		gen = l.gen
		l.mu.Unlock()
		return gen, true, true
	}
	c.inSync = false
	gen = l.changedLocked()
	l.mu.Unlock()
	l.Trigger()
	return gen, true, true
}

// outputDueLocked reports whether a check's held-back output may be
// written now; the caller holds mu.
func (l *State) outputDueLocked(c *localCheck) bool {
	return !c.outputDeferred || l.now().Sub(c.outputSyncedAt) >= l.outputInterval
}

// Service returns a copy of a service, or nil.
func (l *State) Service(id string) *catalog.Service {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.services[id]; ok {
		c := *s.svc
		return &c
	}
	return nil
}

// Check returns a copy of a check, or nil.
func (l *State) Check(id string) *catalog.Check {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.checks[id]; ok {
		cc := *c.chk
		return &cc
	}
	return nil
}

// CurrentGen is the generation of the latest change.
func (l *State) CurrentGen() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// Services returns copies of every service, sorted by ID.
func (l *State) Services() []*catalog.Service {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*catalog.Service, 0, len(l.services))
	for _, id := range slices.Sorted(maps.Keys(l.services)) {
		c := *l.services[id].svc
		out = append(out, &c)
	}
	return out
}

// Checks returns copies of every check, sorted by ID.
func (l *State) Checks() []*catalog.Check {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*catalog.Check, 0, len(l.checks))
	for _, id := range slices.Sorted(maps.Keys(l.checks)) {
		c := *l.checks[id].chk
		out = append(out, &c)
	}
	return out
}

// sameService compares what the catalog stores of a service, ignoring the
// node and Raft indexes.
func sameService(a, b *catalog.Service) bool {
	x, y := *a, *b
	x.Node, y.Node = "", ""
	x.CreateIndex, x.ModifyIndex, y.CreateIndex, y.ModifyIndex = 0, 0, 0, 0
	return reflect.DeepEqual(normSlices(x), normSlices(y))
}

func normSlices(s catalog.Service) catalog.Service {
	if len(s.Tags) == 0 {
		s.Tags = nil
	}
	if len(s.Meta) == 0 {
		s.Meta = nil
	}
	return s
}

// sameCheckDefinition compares checks on everything but status, output and
// what the catalog derives (node, service name and tags, indexes).
func sameCheckDefinition(a, b *catalog.Check) bool {
	x, y := *a, *b
	for _, c := range []*catalog.Check{&x, &y} {
		c.Node, c.Status, c.Output, c.ServiceName, c.ServiceTags = "", "", "", "", nil
		c.CreateIndex, c.ModifyIndex = 0, 0
		if len(c.Definition.Header) == 0 {
			c.Definition.Header = nil
		}
	}
	return reflect.DeepEqual(x, y)
}

// Reapable returns the services with a check that has been critical for
// longer than its deregister_critical_service_after.
func (l *State) Reapable() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var out []string
	for _, c := range l.checks {
		after := c.chk.Definition.DeregisterCriticalServiceAfter
		if after > 0 && c.chk.ServiceID != "" && !c.criticalSince.IsZero() && now.Sub(c.criticalSince) >= after {
			out = append(out, c.chk.ServiceID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// dropDeferralLocked forgets a check's held-back output; the caller holds
// mu.
func (l *State) dropDeferralLocked(id string) {
	if c, ok := l.checks[id]; ok && c.outputDeferred {
		c.outputDeferred = false
		l.deferred--
	}
}
