package consensus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/vmihailenco/msgpack/v5"
)

// WriteRetention is how long, in leader time, the FSM remembers a write's
// identity and result. A write's copies (a retry on another server, a
// forward re-sent to a new leader, an entry of a dying leader's log that
// its successor commits) all reach the log within the write's budget from
// where it entered the cluster (30 s at most, see node's writeTimeout);
// this is four times that, so only a process paused for minutes with the
// write in hand could bring a copy later.
const WriteRetention = 2 * time.Minute

// maxWriteRecords bounds the records a snapshot may claim, so a damaged
// or hostile snapshot cannot make a restore allocate without end. At the
// fastest write rate measured (about 2,400 a second) two minutes hold
// under 300,000.
const maxWriteRecords = 16 << 20

// writeRecord is what the FSM remembers of one applied write, as a
// snapshot holds it.
type writeRecord struct {
	//lint:ignore U1000 msgpack reads its tag: records are encoded as arrays
	_msgpack struct{}        `msgpack:",as_array"`
	ID       catalog.WriteID // never zero
	Index    uint64          // where it was applied
	Time     int64           // the table's clock when it was applied
	// Kind and Msg are the write's error: Kind 0 for none.
	Kind uint8
	Msg  string
}

// Kinds of a remembered error: the sentinel it wrapped.
const (
	errKindNone uint8 = iota
	errKindInvalid
	errKindNotFound
	errKindOther
	// errKindConflict (FSM format 3) is a check-and-set write that found
	// another index stored.
	errKindConflict
)

// writeTable remembers the writes applied within WriteRetention of its
// clock. The clock is the largest leader stamp applied so far: every
// replica applies the same stamps in the same order, so every replica
// forgets the same writes at the same index, whatever its own clock says.
// It belongs to the FSM goroutine; nothing in it is safe for concurrent
// use.
type writeTable struct {
	clock int64
	// queue holds the writes in the order applied (so by clock); first is
	// the sequence number of queue[0], and byID maps an identity to its
	// sequence number.
	queue []writeEntry
	first uint64
	byID  map[catalog.WriteID]uint64
	// errs holds the errors of the remembered writes that failed, by
	// sequence number: few do, so the entries stay small.
	errs map[uint64]writeError
}

// writeEntry is a remembered write, as held in memory (32 bytes).
type writeEntry struct {
	ID    catalog.WriteID
	Index uint64
	Time  int64
}

// writeError is a remembered write's error.
type writeError struct {
	kind uint8
	msg  string
}

func newWriteTable() *writeTable {
	return &writeTable{byID: make(map[catalog.WriteID]uint64), errs: make(map[uint64]writeError)}
}

// advance moves the clock to stamp, if later, and forgets what fell out of
// the retention window.
func (w *writeTable) advance(stamp int64) {
	if stamp <= w.clock {
		return
	}
	w.clock = stamp
	cutoff := w.clock - int64(WriteRetention)
	n := 0
	for n < len(w.queue) && w.queue[n].Time < cutoff {
		delete(w.byID, w.queue[n].ID)
		if len(w.errs) > 0 {
			delete(w.errs, w.first+uint64(n))
		}
		n++
	}
	if n > 0 {
		w.queue = w.queue[n:]
		w.first += uint64(n)
	}
}

// get returns the record of id, if it is remembered.
func (w *writeTable) get(id catalog.WriteID) (writeRecord, bool) {
	seq, ok := w.byID[id]
	if !ok {
		return writeRecord{}, false
	}
	return w.record(seq), true
}

// record is the full record of the write with sequence number seq.
func (w *writeTable) record(seq uint64) writeRecord {
	e := w.queue[seq-w.first]
	r := writeRecord{ID: e.ID, Index: e.Index, Time: e.Time}
	if we, ok := w.errs[seq]; ok {
		r.Kind, r.Msg = we.kind, we.msg
	}
	return r
}

// add remembers a write applied at index with its result.
func (w *writeTable) add(id catalog.WriteID, index uint64, result error) {
	seq := w.first + uint64(len(w.queue))
	if result != nil {
		we := writeError{kind: errKindOther, msg: result.Error()}
		switch {
		case errors.Is(result, catalog.ErrInvalid):
			we.kind = errKindInvalid
		case errors.Is(result, catalog.ErrNotFound):
			we.kind = errKindNotFound
		case errors.Is(result, catalog.ErrCASConflict):
			we.kind = errKindConflict
		}
		w.errs[seq] = we
	}
	w.byID[id] = seq
	w.queue = append(w.queue, writeEntry{ID: id, Index: index, Time: w.clock})
}

// len is how many writes are remembered.
func (w *writeTable) len() int { return len(w.queue) }

// err rebuilds the error a remembered write returned.
func (r *writeRecord) err() error {
	switch r.Kind {
	case errKindNone:
		return nil
	case errKindInvalid:
		return &appliedError{msg: r.Msg, sentinel: catalog.ErrInvalid}
	case errKindNotFound:
		return &appliedError{msg: r.Msg, sentinel: catalog.ErrNotFound}
	case errKindConflict:
		return &appliedError{msg: r.Msg, sentinel: catalog.ErrCASConflict}
	}
	return &appliedError{msg: r.Msg}
}

// appliedError is the error of a write applied before, returned again to a
// copy of it.
type appliedError struct {
	msg      string
	sentinel error
}

func (e *appliedError) Error() string { return e.msg }
func (e *appliedError) Unwrap() error { return e.sentinel }

// Duplicate is what the FSM returns for a copy of a write it applied
// already: nothing was changed, and the first application's index and
// error are the copy's answer.
type Duplicate struct {
	Index uint64
	Err   error
}

// writesSnapshot is a copy of a table for a snapshot (without its index
// by identity, which encode does not need).
type writesSnapshot struct{ t writeTable }

func (w *writeTable) snapshot() *writesSnapshot {
	return &writesSnapshot{t: writeTable{clock: w.clock, queue: slices.Clone(w.queue), first: w.first, errs: maps.Clone(w.errs)}}
}

// encode writes the clock, the number of records and the records.
func (s *writesSnapshot) encode(enc *msgpack.Encoder) error {
	if err := enc.EncodeInt(s.t.clock); err != nil {
		return err
	}
	if err := enc.EncodeUint(uint64(s.t.len())); err != nil {
		return err
	}
	for seq := s.t.first; seq < s.t.first+uint64(s.t.len()); seq++ {
		r := s.t.record(seq)
		if err := enc.Encode(&r); err != nil {
			return err
		}
	}
	return nil
}

// decodeWriteTable reads what writesSnapshot.encode wrote.
func decodeWriteTable(dec *msgpack.Decoder) (*writeTable, error) {
	w := newWriteTable()
	clock, err := dec.DecodeInt64()
	if err != nil {
		return nil, fmt.Errorf("write identities: clock: %w", err)
	}
	n, err := dec.DecodeUint64()
	if err != nil {
		return nil, fmt.Errorf("write identities: count: %w", err)
	}
	if n > maxWriteRecords {
		return nil, fmt.Errorf("write identities: %d records, at most %d: %w", n, maxWriteRecords, catalog.ErrInvalid)
	}
	w.clock = clock
	for i := uint64(0); i < n; i++ {
		var r writeRecord
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("write identities: record %d: %w", i, err)
		}
		if r.ID.IsZero() || r.Time > clock || r.Kind > errKindConflict {
			return nil, fmt.Errorf("write identities: record %d: zero identity, time past the clock or unknown error kind: %w", i, catalog.ErrInvalid)
		}
		if _, dup := w.byID[r.ID]; dup {
			return nil, fmt.Errorf("write identities: record %d: identity %s twice: %w", i, r.ID, catalog.ErrInvalid)
		}
		if len(w.queue) > 0 && r.Time < w.queue[len(w.queue)-1].Time {
			return nil, fmt.Errorf("write identities: record %d: out of order: %w", i, catalog.ErrInvalid)
		}
		if r.Kind != errKindNone {
			w.errs[uint64(len(w.queue))] = writeError{kind: r.Kind, msg: r.Msg}
		}
		w.byID[r.ID] = uint64(len(w.queue))
		w.queue = append(w.queue, writeEntry{ID: r.ID, Index: r.Index, Time: r.Time})
	}
	return w, nil
}
