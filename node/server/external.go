package server

import (
	"context"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/rpc"
)

// externalRecheck bounds how long a change of the server set takes to move
// external checks to their new owners.
const externalRecheck = 10 * time.Second

// ExternalChecks runs, on a server, the checks of external nodes: nodes
// registered through catalog/register that no agent looks after (they
// have no serfHealth). Each check runs on one server, chosen by
// rendezvous hashing over the current servers, so the registry can poll
// services itself. While the server set changes a check may run on two
// servers for a moment; that is harmless, as a status write is idempotent.
// Script checks are never run this way: a catalog write must not become
// code execution on a server.
type ExternalChecks struct {
	cfg    ExternalConfig
	logger *slog.Logger
	runner *checks.Runner

	mu sync.Mutex // guards the fields below
	// running maps runner IDs ("node/checkID") to what they run.
	running map[string]externalCheck
	// lastOutputWrite is when a check's output was last written, to hold
	// output-only writes to check_update_interval as agents do.
	lastOutputWrite map[string]time.Time
}

type externalCheck struct {
	node, checkID string
	def           catalog.CheckDefinition
	kind          string
}

// ExternalConfig is what ExternalChecks needs.
type ExternalConfig struct {
	// NodeID is this server's: checks are shared among the servers of the
	// Raft configuration by it.
	NodeID string
	Raft   *consensus.Server
	Store  *catalog.Store
	// Servers takes the status writes (this server's own methods).
	Servers rpc.Caller
	// OutputInterval is check_update_interval: the least time between two
	// writes of a check whose only change is its output.
	OutputInterval time.Duration
	// Alias answers alias checks.
	Alias  checks.AliasSource
	Logger *slog.Logger
}

// NewExternalChecks returns the external checks of cfg; Run runs them.
func NewExternalChecks(cfg ExternalConfig) (*ExternalChecks, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &ExternalChecks{
		cfg:             cfg,
		logger:          cfg.Logger,
		running:         map[string]externalCheck{},
		lastOutputWrite: map[string]time.Time{},
	}
	r, err := checks.NewRunner(checks.Config{Notifier: e, Logger: e.logger, Alias: cfg.Alias})
	if err != nil {
		return nil, err
	}
	e.runner = r
	return e, nil
}

func externalID(node, checkID string) string { return node + "/" + checkID }

// Run keeps the runner's set of checks equal to the external checks this
// server owns, until ctx ends.
func (e *ExternalChecks) Run(ctx context.Context) {
	for {
		ws := memdb.NewWatchSet()
		if err := e.reconcile(ws); err != nil {
			e.logger.Warn("reconcile external checks", "error", err)
		}
		// Wake on a change to any check, or after externalRecheck to pick
		// up a change of the server set.
		wctx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(externalRecheck, cancel)
		ws.WatchCtx(wctx)
		timer.Stop()
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// reconcile starts, restarts and stops checks to match the catalog.
func (e *ExternalChecks) reconcile(ws memdb.WatchSet) error {
	select {
	case <-e.cfg.Raft.Ready():
	default:
		// Not caught up yet: wake when it is, not at the next recheck.
		ws.Add(e.cfg.Raft.Ready())
		return nil
	}
	_, all, err := e.cfg.Store.ChecksInState(ws, catalog.HealthAny)
	if err != nil {
		return err
	}
	servers, err := e.cfg.Raft.ServerIDs()
	if err != nil {
		return err
	}
	agentNodes := map[string]bool{}
	for _, c := range all {
		if c.CheckID == catalog.SerfCheckID {
			agentNodes[strings.ToLower(c.Node)] = true
		}
	}
	want := map[string]externalCheck{}
	initial := map[string]string{}
	for _, c := range all {
		if agentNodes[strings.ToLower(c.Node)] {
			continue
		}
		kind := externalKind(&c.Definition)
		if kind == "" {
			continue
		}
		id := externalID(c.Node, c.CheckID)
		if owner(servers, id) != e.cfg.NodeID {
			continue
		}
		want[id] = externalCheck{node: c.Node, checkID: c.CheckID, def: c.Definition, kind: kind}
		initial[id] = c.Status
	}

	e.mu.Lock()
	var stop []string
	var start []externalCheck
	for id, ec := range e.running {
		if w, ok := want[id]; !ok || !sameDefinition(w.def, ec.def) {
			stop = append(stop, id)
		}
	}
	for id, w := range want {
		if ec, ok := e.running[id]; !ok || !sameDefinition(w.def, ec.def) {
			start = append(start, w)
		}
	}
	for _, id := range stop {
		delete(e.running, id)
		delete(e.lastOutputWrite, id)
	}
	for _, w := range start {
		e.running[externalID(w.node, w.checkID)] = w
	}
	e.mu.Unlock()

	for _, id := range stop {
		e.runner.Remove(id)
	}
	for _, w := range start {
		id := externalID(w.node, w.checkID)
		if err := e.runner.Add(ExternalDefinition(id, &w.def), initial[id]); err != nil {
			e.logger.Warn("cannot run external check", "node", w.node, "check", w.checkID, "error", err)
			e.mu.Lock()
			delete(e.running, id)
			e.mu.Unlock()
		}
	}
	return nil
}

// externalKind is the kind of check a server runs for an external node, or
// "" for one it does not run (no active definition, or a script).
func externalKind(d *catalog.CheckDefinition) string {
	if d.Interval <= 0 {
		return ""
	}
	switch {
	case d.HTTP != "":
		return checks.KindHTTP
	case d.TCP != "":
		return checks.KindTCP
	case d.GRPC != "":
		return checks.KindGRPC
	}
	return ""
}

func sameDefinition(a, b catalog.CheckDefinition) bool {
	return a.HTTP == b.HTTP && a.Method == b.Method && a.Body == b.Body && a.TLSSkipVerify == b.TLSSkipVerify &&
		a.TCP == b.TCP && a.GRPC == b.GRPC && a.Interval == b.Interval && a.Timeout == b.Timeout &&
		headersEqual(a.Header, b.Header)
}

func headersEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || strings.Join(v, "\x00") != strings.Join(w, "\x00") {
			return false
		}
	}
	return true
}

// owner picks the server that runs a check: the highest hash of server ID
// and check, so a server joining or leaving moves only its share.
func owner(servers []string, id string) string {
	var best string
	var bestScore uint64
	for _, s := range servers {
		h := fnv.New64a()
		h.Write([]byte(s))
		h.Write([]byte{0})
		h.Write([]byte(id))
		if score := h.Sum64(); best == "" || score > bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// UpdateCheck implements checks.Notifier: a status change is written at
// once, an output-only change at most once per check_update_interval.
func (e *ExternalChecks) UpdateCheck(id, status, output string) {
	e.mu.Lock()
	ec, ok := e.running[id]
	if !ok {
		e.mu.Unlock()
		return
	}
	cur, err := e.cfg.Store.Check(ec.node, ec.checkID)
	if err != nil || cur == nil {
		e.mu.Unlock()
		return
	}
	if cur.Status == status {
		if cur.Output == output || time.Since(e.lastOutputWrite[id]) < e.cfg.OutputInterval {
			e.mu.Unlock()
			return
		}
	}
	e.lastOutputWrite[id] = time.Now()
	e.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = UpdateCheck.Call(ctx, e.cfg.Servers, &catalog.CheckStatusUpdate{Node: ec.node, CheckID: ec.checkID, Status: status, Output: output})
	if err != nil {
		e.logger.Warn("write external check status", "node", ec.node, "check", ec.checkID, "error", err)
	}
}

// Shutdown stops every external check and waits for them.
func (e *ExternalChecks) Shutdown(ctx context.Context) error {
	return e.runner.Shutdown(ctx)
}
