package consensus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/meshd/meshd/catalog"
	"github.com/vmihailenco/msgpack/v5"
)

// ErrHalted is returned for every entry after one this server could not
// apply, and by reads of a halted server: its catalog stopped at the entry
// before, and stays there until a build that reads the entry restarts it.
var ErrHalted = errors.New("catalog halted at a log entry this server cannot apply")

// FSM applies committed commands to a catalog.Store. The value Apply
// returns is the command's error, or nil: a refused write (bad input) is
// refused identically on every replica, so it is an answer, not a fault.
// A copy of a write applied before returns *Duplicate instead.
type FSM struct {
	store   *catalog.Store
	logger  *slog.Logger
	applied atomic.Uint64
	observe func(MessageType, time.Duration) // nil: none
	// onHalt, when set, hears once that the FSM halted.
	onHalt func(error)

	// writes belongs to the FSM goroutine (Apply, Snapshot, Restore);
	// stamped says, for other goroutines, whether it has seen a stamped
	// entry: from then on the whole cluster reads them.
	writes  *writeTable
	stamped atomic.Bool
	// halted holds the error that stopped the FSM; nil while it runs.
	halted atomic.Pointer[error]
}

// AppliedIndex is the index of the last command the FSM has applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// NewFSM returns an FSM writing to store.
func NewFSM(store *catalog.Store, logger *slog.Logger) *FSM {
	return &FSM{store: store, logger: logger, writes: newWriteTable()}
}

// Halted returns the error that stopped the FSM, or nil.
func (f *FSM) Halted() error {
	if p := f.halted.Load(); p != nil {
		return *p
	}
	return nil
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if err := f.Halted(); err != nil {
		return err
	}
	e, err := Decode(l.Data)
	if errors.Is(err, ErrUnknownCommand) && e.Type&IgnoreUnknownTypeFlag != 0 {
		f.logger.Warn("skipping unknown command", "type", uint8(e.Type), "index", l.Index)
		f.applied.Store(l.Index)
		return nil
	}
	if err != nil {
		// Applying past a command we cannot read would let this replica
		// diverge from the others; skipping it likewise. Stop here, and
		// keep answering nothing past it until a build that reads it
		// takes over (a restart replays from the last snapshot, which
		// Snapshot no longer takes, and stops here again).
		return f.halt(fmt.Errorf("%w: index %d: %v", ErrHalted, l.Index, err))
	}
	defer f.applied.Store(l.Index)
	if f.observe != nil {
		start := time.Now()
		defer func() { f.observe(e.Type, time.Since(start)) }()
	}
	var id catalog.WriteID
	if e.Stamp > 0 {
		if !f.stamped.Load() {
			f.stamped.Store(true)
		}
		f.writes.advance(e.Stamp)
		if w, ok := e.Body.(catalog.Write); ok {
			id = w.WriteMeta().WriteID
		}
		if !id.IsZero() {
			if r, ok := f.writes.get(id); ok {
				return &Duplicate{Index: r.Index, Err: r.err()}
			}
		}
	}
	res := f.apply(l.Index, e)
	if !id.IsZero() {
		f.writes.add(id, l.Index, res)
	}
	return res
}

func (f *FSM) apply(index uint64, e Entry) error {
	switch req := e.Body.(type) {
	case *catalog.RegisterRequest:
		return f.store.EnsureRegistration(index, req)
	case *catalog.DeregisterRequest:
		return f.store.Deregister(index, req)
	case *catalog.CheckStatusUpdate:
		return f.store.UpdateCheckStatus(index, req)
	case *catalog.PreparedQueryRequest:
		return f.store.ApplyPreparedQuery(index, req)
	case *catalog.AutopilotConfigRequest:
		return f.store.SetAutopilotConfig(index, req)
	}
	// Decode returned a body type this switch lacks: a programmer error.
	panic(fmt.Sprintf("consensus: index %d: no handler for %s", index, e.Type))
}

// halt stops the FSM with err, which it returns.
func (f *FSM) halt(err error) error {
	if f.halted.CompareAndSwap(nil, &err) {
		f.logger.Error("catalog halted: this server cannot apply a committed log entry; "+
			"it serves no reads and applies nothing more until a build that reads the entry restarts it",
			"error", err, "applied_index", f.applied.Load())
		if f.onHalt != nil {
			f.onHalt(err)
		}
	}
	return f.Halted()
}

// Snapshot implements raft.FSM. It is cheap: the catalog's read
// transaction is an immutable view, and the write identities are copied.
// A halted FSM takes none: a snapshot would label the state before the
// entry it could not apply with a later index, and the log behind it
// would be compacted away.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.Halted(); err != nil {
		return nil, err
	}
	s := &fsmSnapshot{snap: f.store.Snapshot()}
	if f.writes.clock > 0 {
		s.writes = f.writes.snapshot()
	}
	return s, nil
}

// Snapshot stream formats. A format 1 stream is the catalog's own
// stream, which starts with its version, 1; a format 2 stream starts with
// 2, then the write identities, then the catalog's stream. Format 1 is
// still written while no stamped entry was applied, so servers of an
// older build can install the snapshots of a cluster that has not yet
// turned stamps on.
const (
	snapshotFormatCatalog = 1
	snapshotFormatWrites  = 2
)

// Restore implements raft.FSM. Nothing changes unless the whole snapshot
// reads.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReader(rc)
	first, err := br.Peek(1)
	if err != nil {
		return fmt.Errorf("restore: read snapshot format: %w", err)
	}
	writes := newWriteTable()
	switch first[0] {
	case snapshotFormatCatalog: // msgpack's positive fixint 1
	case snapshotFormatWrites:
		dec := msgpack.NewDecoder(br) // reads br itself: a bufio.Reader is a ByteScanner
		if _, err := dec.DecodeUint8(); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if writes, err = decodeWriteTable(dec); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	default:
		return fmt.Errorf("restore: snapshot format %d: %w", first[0], catalog.ErrInvalid)
	}
	if err := f.store.Restore(br); err != nil {
		return fmt.Errorf("restore catalog: %w", err)
	}
	f.writes = writes
	if writes.clock > 0 {
		f.stamped.Store(true)
	}
	return nil
}

type fsmSnapshot struct {
	snap   *catalog.Snapshot
	writes *writesSnapshot // nil: format 1
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.persist(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) persist(w io.Writer) error {
	if s.writes != nil {
		bw := bufio.NewWriter(w)
		enc := msgpack.NewEncoder(bw)
		if err := enc.EncodeUint(snapshotFormatWrites); err != nil {
			return err
		}
		if err := s.writes.encode(enc); err != nil {
			return fmt.Errorf("write snapshot: write identities: %w", err)
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	return s.snap.Persist(w)
}

func (s *fsmSnapshot) Release() {}
