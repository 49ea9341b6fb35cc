package consensus

import (
	"errors"
	"fmt"
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

// writeRecord is what the FSM remembers of one applied write.
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
)

// writeTable remembers the writes applied within WriteRetention of its
// clock. The clock is the largest leader stamp applied so far: every
// replica applies the same stamps in the same order, so every replica
// forgets the same writes at the same index, whatever its own clock says.
// It belongs to the FSM goroutine; nothing in it is safe for concurrent
// use.
type writeTable struct {
	clock int64
	// queue holds the records in the order applied (so by clock); first is
	// the sequence number of queue[0], and byID maps an identity to its
	// record's sequence number.
	queue []writeRecord
	first uint64
	byID  map[catalog.WriteID]uint64
}

func newWriteTable() *writeTable {
	return &writeTable{byID: make(map[catalog.WriteID]uint64)}
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
		n++
	}
	if n > 0 {
		clear(w.queue[:n]) // drop the strings
		w.queue = w.queue[n:]
		w.first += uint64(n)
	}
}

// get returns the record of id, if it is remembered.
func (w *writeTable) get(id catalog.WriteID) (*writeRecord, bool) {
	seq, ok := w.byID[id]
	if !ok {
		return nil, false
	}
	return &w.queue[seq-w.first], true
}

// add remembers a write applied at index with its result.
func (w *writeTable) add(id catalog.WriteID, index uint64, result error) {
	r := writeRecord{ID: id, Index: index, Time: w.clock}
	if result != nil {
		r.Msg = result.Error()
		switch {
		case errors.Is(result, catalog.ErrInvalid):
			r.Kind = errKindInvalid
		case errors.Is(result, catalog.ErrNotFound):
			r.Kind = errKindNotFound
		default:
			r.Kind = errKindOther
		}
	}
	w.byID[id] = w.first + uint64(len(w.queue))
	w.queue = append(w.queue, r)
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

// writesSnapshot is a copy of a table for a snapshot.
type writesSnapshot struct {
	clock   int64
	records []writeRecord
}

func (w *writeTable) snapshot() *writesSnapshot {
	return &writesSnapshot{clock: w.clock, records: append([]writeRecord(nil), w.queue...)}
}

// encode writes the clock, the number of records and the records.
func (s *writesSnapshot) encode(enc *msgpack.Encoder) error {
	if err := enc.EncodeInt(s.clock); err != nil {
		return err
	}
	if err := enc.EncodeUint(uint64(len(s.records))); err != nil {
		return err
	}
	for i := range s.records {
		if err := enc.Encode(&s.records[i]); err != nil {
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
		if r.ID.IsZero() || r.Time > clock {
			return nil, fmt.Errorf("write identities: record %d: zero identity or time past the clock: %w", i, catalog.ErrInvalid)
		}
		if _, dup := w.byID[r.ID]; dup {
			return nil, fmt.Errorf("write identities: record %d: identity %s twice: %w", i, r.ID, catalog.ErrInvalid)
		}
		if len(w.queue) > 0 && r.Time < w.queue[len(w.queue)-1].Time {
			return nil, fmt.Errorf("write identities: record %d: out of order: %w", i, catalog.ErrInvalid)
		}
		w.byID[r.ID] = uint64(len(w.queue))
		w.queue = append(w.queue, r)
	}
	return w, nil
}
