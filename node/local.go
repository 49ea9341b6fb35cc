package node

import (
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/config"
)

// localService is a service instance registered with this agent.
type localService struct {
	svc     *catalog.Service // Node is empty: the agent's node is implied
	inSync  bool
	version uint64
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

// localState is what this agent has registered, and what of it the
// catalog is known to hold. It is safe for concurrent use.
type localState struct {
	notify func() // called, without mu held, after every change
	// outputInterval is check_update_interval: the least time between two
	// writes of a check whose only change is its output (0: no limit).
	outputInterval time.Duration
	now            func() time.Time

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
	// gen counts changes; the sync loop reports the gen it has pushed.
	gen uint64
}

func newLocalState(outputInterval time.Duration, notify func()) *localState {
	return &localState{
		outputInterval: outputInterval,
		now:            time.Now,
		// gen 1 is the node itself: the first sync registers it.
		gen:             1,
		notify:          notify,
		services:        map[string]*localService{},
		checks:          map[string]*localCheck{},
		removedServices: map[string]struct{}{},
		removedChecks:   map[string]struct{}{},
	}
}

// changed bumps the generation; callers hold mu. It returns the new gen.
func (l *localState) changedLocked() uint64 {
	l.gen++
	return l.gen
}

// addService adds or replaces a service and its checks in one step, so the
// sync never sees the service without them. It returns the change's gen.
func (l *localState) addService(ls *localService, chks []*localCheck) uint64 {
	l.mu.Lock()
	ls.version = l.nextVersionLocked()
	delete(l.removedServices, ls.svc.ID)
	l.services[ls.svc.ID] = ls
	for _, c := range chks {
		l.putCheckLocked(c)
	}
	gen := l.changedLocked()
	l.mu.Unlock()
	l.notify()
	return gen
}

func (l *localState) putCheckLocked(c *localCheck) {
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
func (l *localState) nextVersionLocked() uint64 {
	l.versions++
	return l.versions
}

// addCheck adds or replaces one check.
func (l *localState) addCheck(c *localCheck) uint64 {
	l.mu.Lock()
	l.putCheckLocked(c)
	gen := l.changedLocked()
	l.mu.Unlock()
	l.notify()
	return gen
}

// removeService removes a service and its checks. It reports false when
// there was no such service.
func (l *localState) removeService(id string) (uint64, bool) {
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
	l.notify()
	return gen, true
}

func (l *localState) removeCheckLocked(id string) {
	if c := l.checks[id]; c != nil {
		if c.outputDeferred {
			l.deferred--
		}
	}
	delete(l.checks, id)
	l.removedChecks[id] = struct{}{}
}

// removeCheck removes one check; false when there was none.
func (l *localState) removeCheck(id string) (uint64, bool) {
	l.mu.Lock()
	if _, ok := l.checks[id]; !ok {
		l.mu.Unlock()
		return 0, false
	}
	l.removeCheckLocked(id)
	gen := l.changedLocked()
	l.mu.Unlock()
	l.notify()
	return gen, true
}

// updateCheck sets a check's status and output. A call that changes
// neither changes nothing, so a steady heartbeat costs no write. It
// reports whether there is such a check and whether it changed.
func (l *localState) updateCheck(id, status, output string) (gen uint64, found, changed bool) {
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
	l.notify()
	return gen, true, true
}

// outputDueLocked reports whether a check's held-back output may be
// written now; the caller holds mu.
func (l *localState) outputDueLocked(c *localCheck) bool {
	return !c.outputDeferred || l.now().Sub(c.outputSyncedAt) >= l.outputInterval
}

// service returns a copy of a service, or nil.
func (l *localState) service(id string) *catalog.Service {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.services[id]; ok {
		c := *s.svc
		return &c
	}
	return nil
}

// check returns a copy of a check, or nil.
func (l *localState) check(id string) *catalog.Check {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.checks[id]; ok {
		cc := *c.chk
		return &cc
	}
	return nil
}

// currentGen is the generation of the latest change.
func (l *localState) currentGen() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// listServices returns copies of every service, sorted by ID.
func (l *localState) listServices() []*catalog.Service {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*catalog.Service, 0, len(l.services))
	for _, id := range slices.Sorted(maps.Keys(l.services)) {
		c := *l.services[id].svc
		out = append(out, &c)
	}
	return out
}

// listChecks returns copies of every check, sorted by ID.
func (l *localState) listChecks() []*catalog.Check {
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

// reapable returns the services with a check that has been critical for
// longer than its deregister_critical_service_after.
func (l *localState) reapable() []string {
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
func (l *localState) dropDeferralLocked(id string) {
	if c, ok := l.checks[id]; ok && c.outputDeferred {
		c.outputDeferred = false
		l.deferred--
	}
}
