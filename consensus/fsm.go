package consensus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/meshd/meshd/catalog"
)

// FSM applies committed commands to a catalog.Store. The value Apply
// returns is the command's error, or nil: a refused write (bad input) is
// refused identically on every replica, so it is an answer, not a fault.
type FSM struct {
	store   *catalog.Store
	logger  *slog.Logger
	applied atomic.Uint64
	observe func(MessageType, time.Duration) // nil: none
}

// AppliedIndex is the index of the last command the FSM has applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// NewFSM returns an FSM writing to store.
func NewFSM(store *catalog.Store, logger *slog.Logger) *FSM {
	return &FSM{store: store, logger: logger}
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	defer f.applied.Store(l.Index)
	t, body, err := Decode(l.Data)
	if errors.Is(err, ErrUnknownCommand) && t&IgnoreUnknownTypeFlag != 0 {
		f.logger.Warn("skipping unknown command", "type", uint8(t), "index", l.Index)
		return nil
	}
	if err != nil {
		// Applying past a command we cannot read would let this replica
		// diverge from the others: stop here.
		panic(fmt.Sprintf("consensus: index %d: %v", l.Index, err))
	}
	if f.observe != nil {
		start := time.Now()
		defer func() { f.observe(t, time.Since(start)) }()
	}
	switch req := body.(type) {
	case *catalog.RegisterRequest:
		return f.store.EnsureRegistration(l.Index, req)
	case *catalog.DeregisterRequest:
		return f.store.Deregister(l.Index, req)
	case *catalog.CheckStatusUpdate:
		return f.store.UpdateCheckStatus(l.Index, req)
	case *catalog.PreparedQueryRequest:
		return f.store.ApplyPreparedQuery(l.Index, req)
	}
	panic(fmt.Sprintf("consensus: index %d: no handler for %s", l.Index, t))
}

// Snapshot implements raft.FSM. It is cheap: the catalog's read
// transaction is an immutable view.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.store.Snapshot()}, nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.store.Restore(rc); err != nil {
		return fmt.Errorf("restore catalog: %w", err)
	}
	return nil
}

type fsmSnapshot struct {
	snap *catalog.Snapshot
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.snap.Persist(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
