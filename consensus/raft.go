package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/meshd/meshd/catalog"
)

var (
	// ErrNotLeader is returned by Apply on a server that is not the leader.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrShutdown is returned by calls on a server that is shutting down.
	ErrShutdown = errors.New("raft shut down")
	// ErrNotReady is returned while a restarted server has not yet replayed
	// the log it had when it started.
	ErrNotReady = errors.New("catalog not ready: still replaying the raft log")
)

// Config configures a Server.
type Config struct {
	// NodeID is the Raft server ID: stable across restarts.
	NodeID string
	// DataDir holds the log and snapshots under raft/. Empty keeps both in
	// memory (dev mode): nothing survives a restart.
	DataDir string
	// Bootstrap makes this server the sole voter of a new cluster when it
	// has no Raft state yet.
	Bootstrap bool
	// Advertise is the address other servers reach this one at.
	Advertise net.Addr
	// ApplyTimeout bounds how long Apply waits to enqueue a command.
	ApplyTimeout time.Duration
	// Raft tunes the library; nil takes raft.DefaultConfig(). LocalID and
	// Logger are always set by New.
	Raft *raft.Config
	// SnapshotRetain is how many snapshots to keep on disk.
	SnapshotRetain int
	// LeaderFunc, if set, runs while this server leads, from just after it
	// has applied the whole log; its ctx ends when leadership is lost or
	// the server shuts down, and it must return then.
	LeaderFunc func(ctx context.Context)
	Logger     *slog.Logger
	// ObserveApply, when set, hears of each command this server applied
	// through Apply as leader, with the time from submitting it to its
	// commit and application (the write latency); ObserveFSM of each
	// command the FSM applied, leader or follower, with the time applying
	// it took. For metrics: both must be quick.
	ObserveApply, ObserveFSM func(t MessageType, took time.Duration)
	// ObserveLogWrite, when set, hears of each write to the Raft log
	// (one fsync on disk): how many entries it held and how long it took.
	// The leader groups the writes submitted while its previous write was
	// on disk, so the entry count is the batch size a burst achieved.
	ObserveLogWrite func(entries int, took time.Duration)
	// ServersReadStamps, when set, reports whether every server of the
	// datacenter reads stamped entries (StampedVersion or later). Until it
	// does the leader writes unstamped entries, which servers of the
	// previous build read, and writes are not deduplicated; once one
	// stamped entry is applied it is no longer asked. nil: every server
	// does.
	ServersReadStamps func() bool
	// ObserveDuplicate, when set, hears of each write this leader
	// committed that the FSM found a copy of one applied before (a retry
	// or a re-sent forward): it changed nothing.
	ObserveDuplicate func(t MessageType)
	// OnHalt, when set, hears once that this server's FSM met a committed
	// entry it cannot apply (ErrHalted): it applies nothing more and must
	// serve no reads. It must not block.
	OnHalt func(error)
}

// DefaultConfig returns the settings for a server on a LAN.
func DefaultConfig() Config {
	return Config{
		ApplyTimeout:   30 * time.Second,
		SnapshotRetain: 2,
		Logger:         slog.Default(),
	}
}

// Raft timings at multiplier 1, for servers on one LAN. An election takes
// one to two heartbeat timeouts of silence plus a round of votes, so a
// leader lost without a word is replaced in well under a second at
// multiplier 1.
const (
	baseHeartbeatTimeout = 200 * time.Millisecond
	baseElectionTimeout  = 200 * time.Millisecond
	baseLeaderLease      = 100 * time.Millisecond
	// SnapshotThreshold is how many log entries past the last snapshot
	// trigger a new one.
	SnapshotThreshold = 16384
)

// LANRaftConfig returns Raft timings for servers on a LAN, scaled by
// multiplier (1 to 10, as Consul's raft_multiplier: higher tolerates slow
// or loaded machines at the cost of slower failover), with snapshots past
// SnapshotThreshold entries.
func LANRaftConfig(multiplier int) *raft.Config {
	m := time.Duration(max(multiplier, 1))
	c := raft.DefaultConfig()
	c.HeartbeatTimeout = baseHeartbeatTimeout * m
	c.ElectionTimeout = baseElectionTimeout * m
	c.LeaderLeaseTimeout = baseLeaderLease * m
	c.CommitTimeout = 10 * time.Millisecond
	c.SnapshotThreshold = SnapshotThreshold
	c.SnapshotInterval = 30 * time.Second // how often the threshold is looked at
	c.TrailingLogs = 10240
	return c
}

// DevRaftConfig returns Raft timings for a single in-process server:
// elections in a tenth of a second, so a dev agent or a test is up at once.
func DevRaftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	return c
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.NodeID == "" {
		return errors.New("consensus: NodeID is required")
	}
	if c.Advertise == nil {
		return errors.New("consensus: Advertise address is required")
	}
	if c.ApplyTimeout <= 0 {
		return errors.New("consensus: ApplyTimeout must be positive")
	}
	if c.Raft != nil {
		rc := *c.Raft
		rc.LocalID = raft.ServerID(c.NodeID)
		if err := raft.ValidateConfig(&rc); err != nil {
			return fmt.Errorf("consensus: %w", err)
		}
	}
	return nil
}

// Server is one member of the Raft group. Create it with New, start it
// with Start, stop it with Shutdown. Its methods are safe for concurrent
// use.
type Server struct {
	cfg    Config
	fsm    *FSM
	logger *slog.Logger

	layer *streamLayer

	mu        sync.Mutex // guards the fields below, set by Start and Shutdown
	raft      *raft.Raft
	transport *raft.NetworkTransport
	wal       *wal.WAL
	walMeta   *metadb.BoltMetaDB
	snaps     raft.SnapshotStore
	started   bool
	shutdown  bool
	hadState  bool // Raft state existed when the server started

	readyCh     chan struct{}
	leaderReady atomic.Bool // leading, with the barrier through

	// stampChecked is when ServersReadStamps was last asked (Unix ns);
	// the caller that moves it forward asks, the others go on unstamped.
	stampChecked atomic.Int64

	epochMu    sync.Mutex // guards epoch and endEpoch
	epoch      context.Context
	endEpoch   context.CancelFunc
	shutdownCh chan struct{}
	wg         sync.WaitGroup
}

// New validates cfg and prepares a server applying to store. It opens no
// files and starts nothing.
func New(cfg Config, store *catalog.Store) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("component", "raft")
	s := &Server{
		cfg:        cfg,
		fsm:        NewFSM(store, logger),
		logger:     logger,
		layer:      newStreamLayer(cfg.Advertise),
		readyCh:    make(chan struct{}),
		shutdownCh: make(chan struct{}),
	}
	s.epoch, s.endEpoch = context.WithCancel(context.Background())
	s.fsm.observe, s.fsm.onHalt = cfg.ObserveFSM, s.halted
	return s, nil
}

// halted hears that the FSM stopped: a leader hands its leadership to
// another server, whose catalog is whole, and the operator is told.
func (s *Server) halted(err error) {
	if s.cfg.OnHalt != nil {
		s.cfg.OnHalt(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown || s.raft == nil || s.raft.State() != raft.Leader {
		return
	}
	r := s.raft
	// Raft ends the transfer, at the latest when it shuts down, and
	// Shutdown waits for it.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := r.LeadershipTransfer().Error(); err != nil {
			s.logger.Warn("hand over leadership after the catalog halted", "error", err)
		}
	}()
}

// Halted returns ErrHalted, wrapped with the entry, once this server's
// catalog has stopped at an entry it cannot apply; nil while it runs.
func (s *Server) Halted() error { return s.fsm.Halted() }

// stampWrites reports whether the leader stamps the entries it appends.
func (s *Server) stampWrites() bool {
	if s.fsm.stamped.Load() || s.cfg.ServersReadStamps == nil {
		return true
	}
	last, now := s.stampChecked.Load(), time.Now().UnixNano()
	if now-last < int64(time.Second) || !s.stampChecked.CompareAndSwap(last, now) {
		return false
	}
	if s.cfg.ServersReadStamps() {
		s.fsm.stamped.Store(true) // the stamped entry will confirm it
		return true
	}
	return false
}

// HandleConn takes a Raft connection from the server port's multiplexer,
// its first byte (RaftConnByte) already consumed.
func (s *Server) HandleConn(c net.Conn) { s.layer.handoff(c) }

// Start opens the stores, bootstraps a new cluster when configured and
// there is no state, and starts Raft. Reads should wait for Ready.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return ErrShutdown
	}
	if s.started {
		return errors.New("consensus: already started")
	}
	rc := raft.DefaultConfig()
	if s.cfg.Raft != nil {
		c := *s.cfg.Raft
		rc = &c
	}
	rc.LocalID = raft.ServerID(s.cfg.NodeID)
	rc.Logger = hclogFor(s.logger, "raft")

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if s.cfg.DataDir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		dir := filepath.Join(s.cfg.DataDir, "raft")
		if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
			return fmt.Errorf("raft dir: %w", err)
		}
		w, meta, err := openLog(filepath.Join(dir, "wal"), s.logger, 0)
		if err != nil {
			return err
		}
		fss, err := raft.NewFileSnapshotStoreWithLogger(dir, s.cfg.SnapshotRetain, hclogFor(s.logger, "snapshot"))
		if err != nil {
			w.Close()
			meta.Close()
			return fmt.Errorf("open snapshots: %w", err)
		}
		s.wal, s.walMeta = w, meta
		logs, stable, snaps = w, w, fss
	}
	if s.cfg.ObserveLogWrite != nil {
		logs = observedLogs{LogStore: logs, observe: s.cfg.ObserveLogWrite}
	}
	s.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  s.layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hclogFor(s.logger, "transport"),
		// No pipelined replication. raft v1.8.0's pipeline deadlocks when
		// a follower answers with a newer term (a leader paused and
		// resumed, found by the history checker): its decoder stops, the
		// unbuffered pipeline fills, and the replication goroutine blocks
		// for good, so that follower gets no entry again and Shutdown
		// never returns. Synchronous AppendEntries (each a batch of up to
		// MaxAppendEntries) are enough on a LAN.
		MaxRPCsInFlight: 1,
	})

	fail := func(err error) error {
		s.transport.Close()
		if s.wal != nil {
			s.wal.Close()
			s.walMeta.Close()
		}
		return err
	}
	if s.cfg.DataDir != "" {
		if err := s.recoverFromPeersFile(rc, logs, stable, snaps); err != nil {
			return fail(err)
		}
	}
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fail(fmt.Errorf("read raft state: %w", err))
	}
	s.hadState = existing
	if s.cfg.Bootstrap && !existing {
		conf := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter,
			ID:       rc.LocalID,
			Address:  s.transport.LocalAddr(),
		}}}
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, s.transport, conf); err != nil {
			return fail(fmt.Errorf("bootstrap raft: %w", err))
		}
		s.logger.Info("bootstrapped a new cluster", "id", rc.LocalID)
	}
	// Reads must not answer from a half-replayed log: note the last command
	// the log held before the restart and open reads once the FSM got there.
	target, err := lastCommandIndex(logs, snaps)
	if err != nil {
		return fail(err)
	}
	r, err := raft.NewRaft(rc, s.fsm, logs, stable, snaps, s.transport)
	if err != nil {
		return fail(fmt.Errorf("start raft: %w", err))
	}
	s.raft = r
	s.snaps = snaps
	s.started = true
	obsCh := make(chan raft.Observation, 16)
	obs := raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(obs)
	s.wg.Add(3)
	go s.waitReady(target, logs)
	go s.leaderLoop(r.LeaderCh())
	go s.observeLeader(r, obs, obsCh)
	return nil
}

// LeaderEpoch returns a context that ends when this server's view of who
// leads changes: another leader, or none (a follower that stops hearing
// from the leader notices within the heartbeat timeout). A call forwarded
// to the leader is abandoned when its epoch ends, so a killed leader, which
// never answers, holds it only until the followers notice, not for the
// call's whole deadline. Shutdown ends the last epoch.
func (s *Server) LeaderEpoch() context.Context {
	s.epochMu.Lock()
	defer s.epochMu.Unlock()
	return s.epoch
}

// observeLeader starts a new leader epoch at each leader observation.
func (s *Server) observeLeader(r *raft.Raft, obs *raft.Observer, ch <-chan raft.Observation) {
	defer s.wg.Done()
	next := func() {
		s.epochMu.Lock()
		s.endEpoch()
		s.epoch, s.endEpoch = context.WithCancel(context.Background())
		s.epochMu.Unlock()
	}
	for {
		select {
		case <-ch:
			next()
		case <-s.shutdownCh:
			r.DeregisterObserver(obs)
			s.epochMu.Lock()
			s.endEpoch()
			s.epochMu.Unlock()
			return
		}
	}
}

// leaderLoop runs the leader's duties each time this server gains
// leadership.
func (s *Server) leaderLoop(leaderCh <-chan bool) {
	defer s.wg.Done()
	var stop func() // stops the running LeaderFunc and waits for it
	stopLeading := func() {
		if stop != nil {
			stop()
			stop = nil
		}
	}
	defer stopLeading()
	for {
		select {
		case isLeader := <-leaderCh:
			s.leaderReady.Store(false)
			stopLeading()
			if isLeader && s.establishLeadership() && s.cfg.LeaderFunc != nil {
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() {
					defer close(done)
					s.cfg.LeaderFunc(ctx)
				}()
				stop = func() { cancel(); <-done }
			}
		case <-s.shutdownCh:
			return
		}
	}
}

// establishLeadership waits until the log is applied and puts this
// server's current address into the configuration: a server restarted on
// another address (a new port, a new IP) would otherwise be listed, and
// dialled by its peers, at the old one.
//
// The barrier is retried while this server still leads. It reports
// whether leadership was established.
func (s *Server) establishLeadership() bool {
	r := s.raft
	for {
		err := r.Barrier(time.Minute).Error()
		if err == nil {
			break
		}
		s.logger.Warn("leader barrier failed", "error", err)
		if r.State() != raft.Leader {
			return false
		}
		select {
		case <-s.shutdownCh:
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		s.logger.Warn("read raft configuration", "error", err)
		return false
	}
	self := raft.ServerID(s.cfg.NodeID)
	addr := s.transport.LocalAddr()
	for _, srv := range f.Configuration().Servers {
		if srv.ID == self && srv.Address != addr {
			s.logger.Info("updating this server's raft address", "from", srv.Address, "to", addr)
			if err := r.AddVoter(self, addr, 0, time.Minute).Error(); err != nil {
				s.logger.Warn("update raft address", "error", err)
			}
		}
	}
	s.leaderReady.Store(true)
	return true
}

// LeaderReady reports whether this server leads and has applied every
// entry of earlier terms (its barrier is through): only then may a
// consistent read trust its catalog.
func (s *Server) LeaderReady() bool {
	return s.leaderReady.Load() && s.IsLeader()
}

// waitReady closes readyCh once the FSM has applied the last command of
// the log as it stood at start. raft.AppliedIndex counts entries handed to
// the FSM, not applied by it, so this watches the FSM's own count. Two
// cases never bring the FSM to the target and are told apart by looking
// again once Raft has passed it: a snapshot that covers the target was
// restored, or the entry at the target was an uncommitted tail that a new
// leader replaced (the target then moves to the last command Raft did hand
// over).
func (s *Server) waitReady(target uint64, logs raft.LogStore) {
	defer s.wg.Done()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if s.fsm.AppliedIndex() >= target {
			close(s.readyCh)
			s.logger.Debug("catalog ready", "index", target)
			return
		}
		if applied := s.raft.AppliedIndex(); applied >= target {
			if snap, _ := strconv.ParseUint(s.raft.Stats()["last_snapshot_index"], 10, 64); snap >= target {
				target = 0
				continue
			}
			if !isCommand(logs, target) {
				target = lastCommandAtOrBelow(logs, applied)
				continue
			}
		}
		select {
		case <-t.C:
		case <-s.shutdownCh:
			return
		}
	}
}

func isCommand(logs raft.LogStore, index uint64) bool {
	var l raft.Log
	return logs.GetLog(index, &l) == nil && l.Type == raft.LogCommand
}

// lastCommandAtOrBelow is the index of the last command at or below index,
// or 0.
func lastCommandAtOrBelow(logs raft.LogStore, index uint64) uint64 {
	first, err := logs.FirstIndex()
	if err != nil {
		return 0
	}
	for i := index; i >= first && i > 0; i-- {
		if isCommand(logs, i) {
			return i
		}
	}
	return 0
}

// Ready is closed once the catalog reflects at least the whole log this
// server had when it started.
func (s *Server) Ready() <-chan struct{} { return s.readyCh }

// Apply commits a command and returns its log index once the FSM has
// applied it. A command the FSM refused returns that error (wrapping
// catalog.ErrInvalid or catalog.ErrNotFound): nothing was changed.
func (s *Server) Apply(ctx context.Context, t MessageType, body any) (uint64, error) {
	r := s.raftOrNil()
	if r == nil {
		return 0, ErrShutdown
	}
	// A request whose budget ran out is dropped before Raft sees it: its
	// sender has given up and may have sent a newer write since.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var stamp int64
	if s.stampWrites() {
		stamp = time.Now().UnixNano()
	}
	buf, err := Encode(t, stamp, body)
	if err != nil {
		return 0, err
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		// raft reads a timeout of 0 or less as "wait for ever".
		timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
	}
	start := time.Now()
	f := r.Apply(buf, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
			return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return 0, ErrShutdown
		}
		return 0, fmt.Errorf("apply %s: %w", t, err)
	}
	if s.cfg.ObserveApply != nil {
		s.cfg.ObserveApply(t, time.Since(start))
	}
	switch resp := f.Response().(type) {
	case *Duplicate:
		if s.cfg.ObserveDuplicate != nil {
			s.cfg.ObserveDuplicate(t)
		}
		return resp.Index, resp.Err
	case error:
		return f.Index(), resp
	}
	return f.Index(), nil
}

func (s *Server) raftOrNil() *raft.Raft {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return nil
	}
	return s.raft
}

// IsLeader reports whether this server leads the group now.
func (s *Server) IsLeader() bool {
	r := s.raftOrNil()
	return r != nil && r.State() == raft.Leader
}

// Leader returns the leader's address, or "" when there is none known.
func (s *Server) Leader() string {
	r := s.raftOrNil()
	if r == nil {
		return ""
	}
	addr, _ := r.LeaderWithID()
	return string(addr)
}

// Term is this server's current Raft term (0 once shut down).
func (s *Server) Term() uint64 {
	r := s.raftOrNil()
	if r == nil {
		return 0
	}
	return r.CurrentTerm()
}

// LastContact is the time since this server last heard from the leader;
// zero on the leader itself.
func (s *Server) LastContact() time.Duration {
	r := s.raftOrNil()
	if r == nil || r.State() == raft.Leader {
		return 0
	}
	last := r.LastContact()
	if last.IsZero() {
		return 0
	}
	return time.Since(last)
}

// Peers returns the addresses of the voters in the current configuration.
func (s *Server) Peers() ([]string, error) {
	return s.voters(func(srv raft.Server) string { return string(srv.Address) })
}

// ServerIDs returns the IDs of the voters in the current configuration.
func (s *Server) ServerIDs() ([]string, error) {
	return s.voters(func(srv raft.Server) string { return string(srv.ID) })
}

// voters maps each voter of the current configuration through f.
func (s *Server) voters(f func(raft.Server) string) ([]string, error) {
	r := s.raftOrNil()
	if r == nil {
		return nil, ErrShutdown
	}
	fut := r.GetConfiguration()
	if err := fut.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	var out []string
	for _, srv := range fut.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			out = append(out, f(srv))
		}
	}
	return out, nil
}

// WaitForLeader blocks until some server leads or ctx ends.
func (s *Server) WaitForLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.Leader() != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.shutdownCh:
			return ErrShutdown
		case <-t.C:
		}
	}
}

// Shutdown stops Raft and closes the stores. It does not leave the
// cluster: a restarted server keeps its place. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.shutdown = true
	close(s.shutdownCh)
	r, tr, w, meta := s.raft, s.transport, s.wal, s.walMeta
	s.mu.Unlock()

	var first error
	if r != nil {
		if s.cfg.DataDir != "" {
			// A snapshot on the way down makes the next start a restore
			// rather than a long replay.
			if err := r.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
				s.logger.Warn("snapshot on shutdown", "error", err)
			}
		}
		// Bounded by raft itself; the stores must outlive it, so wait.
		first = r.Shutdown().Error()
	}
	s.layer.Close()
	if tr != nil {
		if err := tr.Close(); err != nil && first == nil {
			first = err
		}
	}
	if w != nil {
		if err := w.Close(); err != nil && first == nil {
			first = err
		}
		if err := meta.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.wg.Wait()
	return first
}

// TakeSnapshot snapshots the FSM now and compacts the log behind it.
func (s *Server) TakeSnapshot() error {
	r := s.raftOrNil()
	if r == nil {
		return ErrShutdown
	}
	if err := r.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// openLog opens the Raft log (raft-wal) in dir. WAL.Close leaves the meta
// store open (and its file locked), so the caller owns it and closes it
// after the WAL. raft-wal must be v0.4.1 or later: v0.4.0 left a log whose
// tail was truncated (a follower's uncommitted entries replaced by a new
// leader's) unreadable after the next crash.
// segmentSize > 0 overrides raft-wal's segment size (tests roll segments
// sooner with it).
func openLog(dir string, logger *slog.Logger, segmentSize int) (*wal.WAL, *metadb.BoltMetaDB, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithLogger(hclogFor(logger, "wal")), wal.WithMetaStore(meta), segmentSizeOpt(segmentSize))
	if err != nil {
		meta.Close()
		return nil, nil, fmt.Errorf("open raft log: %w", err)
	}
	return w, meta, nil
}

// segmentSizeOpt is raft-wal's segment size option, its default for 0.
func segmentSizeOpt(size int) func(*wal.WAL) {
	if size > 0 {
		return wal.WithSegmentSize(size)
	}
	return func(*wal.WAL) {}
}

// lastCommandIndex is the index of the last command in the log, or 0 when
// the latest snapshot already covers it. Raft never hands no-op and
// configuration entries to the FSM, so the FSM can only be waited on for
// commands.
func lastCommandIndex(logs raft.LogStore, snaps raft.SnapshotStore) (uint64, error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("read first log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("read last log index: %w", err)
	}
	var target uint64
	for i := last; i >= first && i > 0; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("read log %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			target = i
			break
		}
	}
	metas, err := snaps.List()
	if err != nil {
		return 0, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) > 0 && metas[0].Index >= target {
		return 0, nil // NewRaft restores the snapshot before it returns
	}
	return target, nil
}

// VerifyLeader confirms with a quorum that this server still leads, for
// reads that must not be stale.
func (s *Server) VerifyLeader(ctx context.Context) error {
	r := s.raftOrNil()
	if r == nil {
		return ErrShutdown
	}
	f := r.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns Raft's own statistics (last_log_index, commit_index,
// applied_index, state, ...), as Consul's agent/self shows them, and
// fsm_format, the newest format its catalog holds: 3 once an autopilot
// configuration is stored, else 2 once this server has applied a stamped
// entry (writes are deduplicated), else 1.
func (s *Server) Stats() map[string]string {
	r := s.raftOrNil()
	if r == nil {
		return map[string]string{}
	}
	st := r.Stats()
	st["fsm_format"] = strconv.Itoa(s.Format())
	return st
}

// Format is the newest log and snapshot format this server's catalog
// holds: 3 once an autopilot configuration is stored, else 2 once it has
// applied a stamped entry, else 1. A server of a build that reads less
// cannot follow it.
func (s *Server) Format() int {
	if _, c, err := s.fsm.store.AutopilotConfig(nil); err == nil && c != nil {
		return AutopilotVersion
	}
	if s.fsm.stamped.Load() {
		return StampedVersion
	}
	return 1
}

// ServerInfo is one server of the Raft configuration.
type ServerInfo struct {
	ID      string
	Address string
	Voter   bool
	Leader  bool
}

// Configuration returns the servers of the current Raft configuration and
// the index it was committed at.
func (s *Server) Configuration() ([]ServerInfo, uint64, error) {
	r := s.raftOrNil()
	if r == nil {
		return nil, 0, ErrShutdown
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, 0, fmt.Errorf("raft configuration: %w", err)
	}
	leader, _ := r.LeaderWithID()
	var out []ServerInfo
	for _, srv := range f.Configuration().Servers {
		out = append(out, ServerInfo{
			ID: string(srv.ID), Address: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, Leader: srv.Address == leader,
		})
	}
	return out, f.Index(), nil
}

// observedLogs is a raft.LogStore that reports each successful write. It
// passes raft.MonotonicLogStore through; raft's other optional interface,
// CommitTrackingLogStore, raft-wal does not implement (add it here if the
// store ever does).
type observedLogs struct {
	raft.LogStore
	observe func(entries int, took time.Duration)
}

func (o observedLogs) StoreLog(l *raft.Log) error { return o.StoreLogs([]*raft.Log{l}) }

func (o observedLogs) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := o.LogStore.StoreLogs(logs)
	if err == nil {
		o.observe(len(logs), time.Since(start))
	}
	return err
}

// IsMonotonic passes the wrapped store's raft.MonotonicLogStore through:
// raft-wal's log cannot have gaps, which Raft must know after restoring
// a snapshot.
func (o observedLogs) IsMonotonic() bool {
	m, ok := o.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
