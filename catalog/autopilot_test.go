package catalog

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

func testAutopilotConfig() AutopilotConfig {
	return AutopilotConfig{CleanupDeadServers: true, LastContactThreshold: 200 * time.Millisecond,
		MaxTrailingLogs: 250, ServerStabilizationTime: 10 * time.Second}
}

// TestAutopilotConfigCAS: a check-and-set stores only over the index it
// names (0: none stored yet), keeps CreateIndex, and a refused one changes
// nothing, not even the table's index.
func TestAutopilotConfigCAS(t *testing.T) {
	s := NewStore()
	if idx, c, err := s.AutopilotConfig(nil); err != nil || c != nil || idx != 1 { // indexes are never below 1
		t.Fatalf("empty store: %d %+v %v", idx, c, err)
	}
	c := testAutopilotConfig()
	if err := s.SetAutopilotConfig(5, &AutopilotConfigRequest{Config: c, CAS: true, Index: 4}); !errors.Is(err, ErrCASConflict) {
		t.Fatalf("CAS 4 over none: %v", err)
	}
	if err := s.SetAutopilotConfig(6, &AutopilotConfigRequest{Config: c, CAS: true}); err != nil {
		t.Fatalf("CAS 0 over none: %v", err)
	}
	ws := memdb.NewWatchSet()
	idx, got, err := s.AutopilotConfig(ws)
	if err != nil || idx != 6 || got.CreateIndex != 6 || got.ModifyIndex != 6 || got.MaxTrailingLogs != 250 {
		t.Fatalf("after CAS 0: %d %+v %v", idx, got, err)
	}
	if err := s.SetAutopilotConfig(7, &AutopilotConfigRequest{Config: c, CAS: true}); !errors.Is(err, ErrCASConflict) {
		t.Fatalf("a second CAS 0: %v", err)
	}
	if idx, _, _ := s.AutopilotConfig(nil); fired(ws) || idx != 6 {
		t.Fatalf("a refused check-and-set woke a watcher or moved the index (to %d)", idx)
	}
	c.MaxTrailingLogs, c.CreateIndex, c.ModifyIndex = 9, 1, 1 // the indexes sent are ignored
	if err := s.SetAutopilotConfig(8, &AutopilotConfigRequest{Config: c, CAS: true, Index: 6}); err != nil {
		t.Fatalf("CAS 6: %v", err)
	}
	if !fired(ws) {
		t.Fatal("a stored configuration did not wake its watcher")
	}
	idx, got, _ = s.AutopilotConfig(nil)
	if idx != 8 || got.CreateIndex != 6 || got.ModifyIndex != 8 || got.MaxTrailingLogs != 9 {
		t.Fatalf("after CAS 6: %d %+v", idx, got)
	}
	c.MaxTrailingLogs = 11
	if err := s.SetAutopilotConfig(9, &AutopilotConfigRequest{Config: c}); err != nil {
		t.Fatalf("plain set: %v", err)
	}
	if _, got, _ = s.AutopilotConfig(nil); got.ModifyIndex != 9 || got.MaxTrailingLogs != 11 {
		t.Fatalf("after a plain set: %+v", got)
	}
}

// TestAutopilotConfigValidate: out-of-range settings are refused with the
// field named, and nothing is stored.
func TestAutopilotConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		edit  func(*AutopilotConfig)
		field string
	}{
		{func(c *AutopilotConfig) { c.LastContactThreshold = 0 }, "LastContactThreshold"},
		{func(c *AutopilotConfig) { c.LastContactThreshold = -time.Second }, "LastContactThreshold"},
		{func(c *AutopilotConfig) { c.LastContactThreshold = 48 * time.Hour }, "LastContactThreshold"},
		{func(c *AutopilotConfig) { c.ServerStabilizationTime = -time.Second }, "ServerStabilizationTime"},
		{func(c *AutopilotConfig) { c.MaxTrailingLogs = 1 << 50 }, "MaxTrailingLogs"},
		{func(c *AutopilotConfig) { c.MinQuorum = 1 << 20 }, "MinQuorum"},
		{func(c *AutopilotConfig) { c.RedundancyZoneTag = strings.Repeat("z", 300) }, "RedundancyZoneTag"},
		{func(c *AutopilotConfig) { c.UpgradeVersionTag = "a\x00b" }, "UpgradeVersionTag"},
	} {
		c := testAutopilotConfig()
		tc.edit(&c)
		s := NewStore()
		err := s.SetAutopilotConfig(1, &AutopilotConfigRequest{Config: c})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
		if _, got, _ := s.AutopilotConfig(nil); got != nil {
			t.Errorf("%s: stored %+v", tc.field, got)
		}
	}
}

// TestAutopilotConfigSnapshot: the configuration travels in snapshots, and
// a store without one writes none (so older builds still read its
// snapshots).
func TestAutopilotConfigSnapshot(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n", "s", "svc", nil)
	var before bytes.Buffer
	if err := s.Snapshot().Persist(&before); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(before.Bytes(), []byte("LastContactThreshold")) {
		t.Fatal("a snapshot without a configuration holds an autopilot record")
	}
	c := testAutopilotConfig()
	c.RedundancyZoneTag = "zone"
	if err := s.SetAutopilotConfig(2, &AutopilotConfigRequest{Config: c}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	r := NewStore()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	idx, got, err := r.AutopilotConfig(nil)
	if err != nil || idx != 2 || got == nil || got.RedundancyZoneTag != "zone" || got.ModifyIndex != 2 || got.LastContactThreshold != c.LastContactThreshold {
		t.Fatalf("restored: %d %+v %v", idx, got, err)
	}
}
