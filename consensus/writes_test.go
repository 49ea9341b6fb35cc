package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/testkit"
)

// t0 is a leader stamp for the tests: some time in 2026.
const t0 = int64(1_780_000_000_000_000_000)

func registerMeta(id catalog.WriteID, v string) *catalog.RegisterRequest {
	return &catalog.RegisterRequest{Node: "n1", Address: "10.0.0.1",
		Service:      &catalog.Service{ID: "web-1", Service: "web", Port: 80, Meta: map[string]string{"v": v}},
		WriteRequest: catalog.WriteRequest{WriteID: id}}
}

// applyAt applies body as a stamped entry (stamp 0: unstamped) at index.
func applyAt(t *testing.T, f *FSM, index uint64, stamp int64, typ MessageType, body any) any {
	t.Helper()
	buf, err := Encode(typ, stamp, body)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf})
}

// metaV is the web-1 instance's Meta["v"] in f's catalog.
func metaV(t *testing.T, f *FSM) string {
	t.Helper()
	_, nodes, err := f.store.ServiceNodes(nil, "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 {
		t.Fatalf("%d instances of web", len(nodes))
	}
	return nodes[0].Service.Meta["v"]
}

// snapshotRestore snapshots f and restores it into a new FSM.
func snapshotRestore(t *testing.T, f *FSM) *FSM {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).persist(&buf); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(catalog.NewStore(), testLogger(t))
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestFSMAppliesAWriteOnce: a copy of a write (a retry, a forward re-sent
// to a new leader, a dying leader's entry committed by its successor) is
// a no-op that answers the first application's index and error, so an
// older write can never land over a newer one; the FSM's memory of it
// survives a snapshot and restore (a new leader, a restarted server) and
// is forgotten, by leader time, after WriteRetention.
func TestFSMAppliesAWriteOnce(t *testing.T) {
	old, newer := catalog.NewWriteID(), catalog.NewWriteID()
	for _, tc := range []struct {
		name    string
		between func(*FSM) *FSM // what happens between the newer write and the copy
	}{
		{"same replica", func(f *FSM) *FSM { return f }},
		{"after snapshot and restore", func(f *FSM) *FSM { return snapshotRestore(t, f) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM(catalog.NewStore(), testLogger(t))
			if res := applyAt(t, f, 10, t0, RegisterType, registerMeta(old, "old")); res != nil {
				t.Fatalf("first write: %v", res)
			}
			if res := applyAt(t, f, 11, t0+int64(time.Second), RegisterType, registerMeta(newer, "new")); res != nil {
				t.Fatalf("newer write: %v", res)
			}
			f = tc.between(f)
			res := applyAt(t, f, 12, t0+2*int64(time.Second), RegisterType, registerMeta(old, "old"))
			if dup, ok := res.(*Duplicate); !ok || dup.Index != 10 || dup.Err != nil {
				t.Fatalf("the copy returned %#v, want Duplicate{Index: 10}", res)
			}
			if v := metaV(t, f); v != "new" {
				t.Fatalf("after the copy of the old write the catalog says %q, want %q", v, "new")
			}
			if f.AppliedIndex() != 12 {
				t.Fatalf("applied index %d, want 12", f.AppliedIndex())
			}
		})
	}

	t.Run("forgotten after the retention, by leader time", func(t *testing.T) {
		f := NewFSM(catalog.NewStore(), testLogger(t))
		applyAt(t, f, 1, t0, RegisterType, registerMeta(old, "old"))
		// A later stamp just inside the window keeps it...
		applyAt(t, f, 2, t0+int64(WriteRetention), RegisterType, registerMeta(newer, "new"))
		if _, ok := applyAt(t, f, 3, t0+int64(WriteRetention), RegisterType, registerMeta(old, "old")).(*Duplicate); !ok {
			t.Fatal("forgotten within the retention")
		}
		// ...one past it forgets it, and a stamp from a leader whose clock
		// is behind does not bring it back.
		applyAt(t, f, 4, t0+int64(WriteRetention)+1, RegisterType, registerMeta(catalog.NewWriteID(), "x"))
		if f.writes.len() != 2 {
			t.Fatalf("%d writes remembered, want 2", f.writes.len())
		}
		if res := applyAt(t, f, 5, t0, RegisterType, registerMeta(old, "old")); res != nil {
			t.Fatalf("a write past the retention is applied again: %v", res)
		}
		if v := metaV(t, f); v != "old" {
			t.Fatalf("catalog says %q", v)
		}
	})

	t.Run("errors are answered again", func(t *testing.T) {
		f := NewFSM(catalog.NewStore(), testLogger(t))
		bad := &catalog.CheckStatusUpdate{Node: "nowhere", CheckID: "c", Status: "passing", WriteRequest: catalog.WriteRequest{WriteID: old}}
		first, _ := applyAt(t, f, 1, t0, CheckUpdateType, bad).(error)
		if !errors.Is(first, catalog.ErrNotFound) {
			t.Fatalf("first: %v", first)
		}
		res := applyAt(t, f, 2, t0, CheckUpdateType, bad)
		dup, ok := res.(*Duplicate)
		if !ok || dup.Index != 1 || !errors.Is(dup.Err, catalog.ErrNotFound) || dup.Err.Error() != first.Error() {
			t.Fatalf("copy returned %#v, want the first error %q", res, first)
		}
		g := snapshotRestore(t, f)
		if dup, _ := applyAt(t, g, 3, t0, CheckUpdateType, bad).(*Duplicate); dup == nil || !errors.Is(dup.Err, catalog.ErrNotFound) {
			t.Fatalf("after restore: %#v", dup)
		}
	})

	t.Run("a check-and-set is decided once", func(t *testing.T) {
		// The autopilot configuration's check-and-set: a copy of a write
		// that won answers success again, though the index it named is
		// gone now, and a copy of one that lost answers the conflict,
		// also after a snapshot and restore.
		f := NewFSM(catalog.NewStore(), testLogger(t))
		c := catalog.AutopilotConfig{LastContactThreshold: time.Second, MaxTrailingLogs: 7}
		won := &catalog.AutopilotConfigRequest{Config: c, CAS: true, WriteRequest: catalog.WriteRequest{WriteID: old}}
		lost := &catalog.AutopilotConfigRequest{Config: c, CAS: true, WriteRequest: catalog.WriteRequest{WriteID: newer}}
		if res := applyAt(t, f, 1, t0, AutopilotConfigType, won); res != nil {
			t.Fatalf("first CAS: %v", res)
		}
		if res, _ := applyAt(t, f, 2, t0, AutopilotConfigType, lost).(error); !errors.Is(res, catalog.ErrCASConflict) {
			t.Fatalf("second CAS on 0: %v", res)
		}
		for _, g := range []*FSM{f, snapshotRestore(t, f)} {
			if dup, _ := applyAt(t, g, 3, t0, AutopilotConfigType, won).(*Duplicate); dup == nil || dup.Index != 1 || dup.Err != nil {
				t.Fatalf("copy of the winner: %#v", dup)
			}
			if dup, _ := applyAt(t, g, 4, t0, AutopilotConfigType, lost).(*Duplicate); dup == nil || !errors.Is(dup.Err, catalog.ErrCASConflict) {
				t.Fatalf("copy of the loser: %#v", dup)
			}
			if _, got, _ := g.store.AutopilotConfig(nil); got == nil || got.ModifyIndex != 1 || got.MaxTrailingLogs != 7 {
				t.Fatalf("stored: %+v", got)
			}
		}
	})

	t.Run("unstamped entries are applied each time", func(t *testing.T) {
		// As a leader writes while a server of the previous build is in
		// the datacenter: that server cannot deduplicate, so no one does.
		f := NewFSM(catalog.NewStore(), testLogger(t))
		applyAt(t, f, 1, 0, RegisterType, registerMeta(old, "old"))
		applyAt(t, f, 2, 0, RegisterType, registerMeta(newer, "new"))
		if res := applyAt(t, f, 3, 0, RegisterType, registerMeta(old, "old")); res != nil {
			t.Fatalf("unstamped copy: %v", res)
		}
		if v := metaV(t, f); v != "old" {
			t.Fatalf("catalog says %q", v)
		}
		if f.writes.len() != 0 || f.stamped.Load() {
			t.Fatal("unstamped entries were remembered")
		}
		// And the snapshot stays in the format the previous build reads.
		snap, _ := f.Snapshot()
		var buf bytes.Buffer
		snap.(*fsmSnapshot).persist(&buf)
		if buf.Bytes()[0] != snapshotFormatCatalog {
			t.Fatalf("snapshot format %d, want %d", buf.Bytes()[0], snapshotFormatCatalog)
		}
	})
}

// TestFSMReadsPreviousFormat applies log entries and restores a snapshot
// written by earlier builds, made by their consensus.Encode and FSM:
// testdata/fsm-v1 before write identities (bodies alone, a catalog
// snapshot), testdata/fsm-v2 by ead6f8d (the same writes stamped with
// identities, entry 6 a copy of entry 2, and a snapshot that carries the
// identities). Both give the same catalog, the snapshot this build takes
// of it restores too, and a v2 snapshot still knows the writes it
// applied.
func TestFSMReadsPreviousFormat(t *testing.T) {
	for _, tc := range []struct {
		dir     string
		entries uint64
	}{{"fsm-v1", 5}, {"fsm-v2", 6}} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.dir)
			replayed := NewFSM(catalog.NewStore(), testLogger(t))
			var entry2 []byte
			for i := uint64(1); i <= tc.entries; i++ {
				buf, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("entry-%d.bin", i)))
				if err != nil {
					t.Fatal(err)
				}
				if i == 2 {
					entry2 = buf
				}
				res := replayed.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: buf})
				if dup, ok := res.(*Duplicate); i == 6 && (!ok || dup.Index != 2) {
					t.Fatalf("entry 6, a copy of entry 2: %#v", res)
				} else if i < 6 && res != nil {
					t.Fatalf("entry %d: %v", i, res)
				}
			}
			snap, err := os.ReadFile(filepath.Join(dir, "snapshot.bin"))
			if err != nil {
				t.Fatal(err)
			}
			restored := NewFSM(catalog.NewStore(), testLogger(t))
			if err := restored.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
				t.Fatalf("restore the previous build's snapshot: %v", err)
			}
			again := snapshotRestore(t, restored)
			want := catalogContents(t, replayed)
			if got := catalogContents(t, restored); !reflect.DeepEqual(got, want) {
				t.Fatalf("restored %+v\nreplayed %+v", got, want)
			}
			if got := catalogContents(t, again); !reflect.DeepEqual(got, want) {
				t.Fatalf("re-snapshotted %+v\nreplayed %+v", got, want)
			}
			if want.instances != 1 || want.checkStatus != catalog.HealthCritical || want.query != "web-q" || want.meta != "a" {
				t.Fatalf("unexpected contents %+v", want)
			}
			if tc.entries == 6 {
				res := again.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: entry2})
				if dup, ok := res.(*Duplicate); !ok || dup.Index != 2 {
					t.Fatalf("a copy of entry 2 after restoring the v2 snapshot: %#v", res)
				}
			}
		})
	}
}

type contents struct {
	nodes, instances int
	meta             string
	checkStatus      string
	query            string
	index            uint64
}

func catalogContents(t *testing.T, f *FSM) contents {
	t.Helper()
	var c contents
	_, nodes, _ := f.store.Nodes(nil)
	c.nodes = len(nodes)
	idx, svcs, _ := f.store.ServiceNodes(nil, "web", nil)
	c.instances, c.index = len(svcs), idx
	if len(svcs) > 0 {
		c.meta = svcs[0].Service.Meta["v"]
	}
	_, chks, _ := f.store.NodeChecks(nil, "n1")
	for _, ch := range chks {
		if ch.CheckID == "web-alive" {
			c.checkStatus = ch.Status
		}
	}
	if _, q, _ := f.store.PreparedQuery(nil, "web-q"); q != nil {
		c.query = q.Name
	}
	return c
}

// TestFSMRestoreRefusesDamage: a snapshot cut short or lying in its write
// section leaves the FSM as it was.
func TestFSMRestoreRefusesDamage(t *testing.T) {
	f := NewFSM(catalog.NewStore(), testLogger(t))
	applyAt(t, f, 1, t0, RegisterType, registerMeta(catalog.NewWriteID(), "kept"))
	snap, _ := f.Snapshot()
	var buf bytes.Buffer
	snap.(*fsmSnapshot).persist(&buf)
	good := buf.Bytes()
	for name, bad := range map[string][]byte{
		"empty":          {},
		"unknown format": {0x07},
		"cut in writes":  good[:12],
		"cut in catalog": good[:len(good)-3],
		"huge count":     {snapshotFormatWrites, 0xd3, 0, 0, 0, 0, 0, 0, 0, 1, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		g := NewFSM(catalog.NewStore(), testLogger(t))
		applyAt(t, g, 1, t0, RegisterType, registerMeta(catalog.NewWriteID(), "kept"))
		if err := g.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
			t.Errorf("%s: restored", name)
		}
		if v := metaV(t, g); v != "kept" || g.writes.len() != 1 {
			t.Errorf("%s: the failed restore changed the FSM", name)
		}
	}
}

// FuzzFSMRestore: whatever a snapshot holds, Restore returns (an error or
// a state) without panicking or allocating past what the bytes justify.
func FuzzFSMRestore(f *testing.F) {
	fsm := NewFSM(catalog.NewStore(), nil)
	for i, stamp := range []int64{t0, t0 + 1} {
		buf, _ := Encode(RegisterType, stamp, registerMeta(catalog.NewWriteID(), "v"))
		fsm.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: buf})
	}
	snap, _ := fsm.Snapshot()
	var buf bytes.Buffer
	snap.(*fsmSnapshot).persist(&buf)
	f.Add(buf.Bytes())
	// With an autopilot configuration, and a refused check-and-set among
	// the remembered writes.
	for i, index := range []uint64{0, 0} { // the first stores at 7, the second is refused
		buf, _ := Encode(AutopilotConfigType, t0+2, &catalog.AutopilotConfigRequest{Config: catalog.AutopilotConfig{LastContactThreshold: time.Second},
			CAS: true, Index: index, WriteRequest: catalog.WriteRequest{WriteID: catalog.NewWriteID()}})
		fsm.Apply(&raft.Log{Index: uint64(7 + i), Type: raft.LogCommand, Data: buf})
	}
	snap, _ = fsm.Snapshot()
	buf.Reset()
	snap.(*fsmSnapshot).persist(&buf)
	f.Add(buf.Bytes())
	for _, v := range []string{"fsm-v1", "fsm-v2"} {
		if old, err := os.ReadFile(filepath.Join("testdata", v, "snapshot.bin")); err == nil {
			f.Add(old)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := NewFSM(catalog.NewStore(), testLogger(t))
		_ = g.Restore(io.NopCloser(bytes.NewReader(data)))
	})
}

// TestStampsWaitForEveryServer: while ServersReadStamps says some server
// of the datacenter reads only the previous format (a rolling upgrade),
// the leader writes unstamped entries, which that build applies, and
// nothing is deduplicated; once every server reads stamps, copies of a
// write are no-ops, and a restart (a snapshot of format 2) keeps it so
// without asking again.
func TestStampsWaitForEveryServer(t *testing.T) {
	var allRead atomic.Bool
	var asked atomic.Int32
	dir := t.TempDir()
	store := catalog.NewStore()
	s := launch(t, store, func(c *Config) {
		c.DataDir, c.Bootstrap = dir, true
		c.ServersReadStamps = func() bool { asked.Add(1); return allRead.Load() }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	twice := func(v string) (uint64, uint64) {
		t.Helper()
		req := registerMeta(catalog.NewWriteID(), v)
		first, err := s.Apply(ctx, RegisterType, req)
		if err != nil {
			t.Fatal(err)
		}
		second, err := s.Apply(ctx, RegisterType, req)
		if err != nil {
			t.Fatal(err)
		}
		return first, second
	}
	if first, second := twice("a"); second == first {
		t.Fatalf("deduplicated (index %d) while a server cannot read stamps", first)
	}
	if s.fsm.stamped.Load() {
		t.Fatal("stamped while a server cannot read stamps")
	}
	allRead.Store(true)
	testkit.Eventually(t, 10*time.Second, "stamped entries", func() bool {
		first, second := twice("b")
		return first == second
	})
	// Once stamped, the FSM knows it; a restart does not ask again.
	n := asked.Load()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	allRead.Store(false)
	s = launch(t, catalog.NewStore(), func(c *Config) {
		c.DataDir, c.Bootstrap = dir, true
		c.ServersReadStamps = func() bool { asked.Add(1); return allRead.Load() }
	})
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ready():
	case <-ctx.Done():
		t.Fatal("never ready after the restart")
	}
	if first, second := twice("c"); first != second {
		t.Fatalf("after a restart: indexes %d and %d, want one write", first, second)
	}
	if asked.Load() != n {
		t.Fatal("asked again after stamped entries were applied")
	}
}
