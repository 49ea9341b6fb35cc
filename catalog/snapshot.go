package catalog

import (
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
	"github.com/vmihailenco/msgpack/v5"
)

// snapshotVersion is the first value of every snapshot stream.
const snapshotVersion = 1

// Record kinds in a snapshot stream: a kind byte, then the msgpack row.
const (
	recordNode byte = iota + 1
	recordService
	recordCheck
	recordIndex
	recordQuery
	// recordAutopilot is written only once a configuration is stored,
	// which the leader does once every server reads it (FSM format 3).
	recordAutopilot
	// recordEnd closes the stream with the number of rows before it, so a
	// stream cut at a row boundary is not taken for a whole one.
	recordEnd byte = 0xff
)

// Snapshot is a point-in-time view of the store for Raft snapshots. It
// holds no locks: writes go on while it is persisted.
type Snapshot struct {
	tx *memdb.Txn
}

// Snapshot captures the current state.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{tx: s.readTxn()}
}

// Persist writes the snapshot as a msgpack stream.
func (sn *Snapshot) Persist(w io.Writer) error {
	enc := msgpack.NewEncoder(w)
	if err := enc.EncodeUint(snapshotVersion); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	var rows uint64
	for _, t := range []struct {
		table string
		kind  byte
	}{
		{tableNodes, recordNode},
		{tableServices, recordService},
		{tableChecks, recordCheck},
		{tableIndex, recordIndex},
		{tableQueries, recordQuery},
		{tableAutopilot, recordAutopilot},
	} {
		it, err := sn.tx.Get(t.table, indexID)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", t.table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if err := enc.EncodeUint8(t.kind); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
			if err := enc.Encode(raw); err != nil {
				return fmt.Errorf("write snapshot %s row: %w", t.table, err)
			}
			rows++
		}
	}
	if err := enc.EncodeUint8(recordEnd); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := enc.EncodeUint(rows); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole state with the snapshot read from r. It builds
// the new state aside and swaps it in only when all of it was read, so a
// bad stream leaves the store as it was. Blocked queries on the old state
// wake through AbandonCh.
func (s *Store) Restore(r io.Reader) error {
	next := newState()
	tx := next.db.Txn(true)
	defer tx.Abort()
	dec := msgpack.NewDecoder(r)
	v, err := dec.DecodeUint()
	if err != nil {
		return fmt.Errorf("read snapshot header: %w", err)
	}
	if v != snapshotVersion {
		return fmt.Errorf("snapshot version %d: %w", v, ErrInvalid)
	}
	var rows uint64
	for {
		kind, err := dec.DecodeUint8()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("snapshot ends without its end record: %w", ErrInvalid)
		}
		if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		if kind == recordEnd {
			want, err := dec.DecodeUint()
			if err != nil {
				return fmt.Errorf("read snapshot end: %w", err)
			}
			if uint64(want) != rows {
				return fmt.Errorf("snapshot has %d rows, its end record says %d: %w", rows, want, ErrInvalid)
			}
			break
		}
		rows++
		var table string
		var row any
		switch kind {
		case recordNode:
			table, row = tableNodes, &Node{}
		case recordService:
			table, row = tableServices, &Service{}
		case recordCheck:
			table, row = tableChecks, &Check{}
		case recordIndex:
			table, row = tableIndex, &IndexEntry{}
		case recordQuery:
			table, row = tableQueries, &PreparedQuery{}
		case recordAutopilot:
			table, row = tableAutopilot, &AutopilotConfig{}
		default:
			return fmt.Errorf("snapshot record kind %d: %w", kind, ErrInvalid)
		}
		if err := dec.Decode(row); err != nil {
			return fmt.Errorf("read snapshot %s row: %w", table, err)
		}
		if err := tx.Insert(table, row); err != nil {
			return fmt.Errorf("restore %s row: %w", table, err)
		}
	}
	tx.Commit()
	old := s.state.Swap(next)
	close(old.abandonCh)
	return nil
}
