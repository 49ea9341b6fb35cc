package catalog

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// The autopilot configuration: how the leader manages its datacenter's
// servers, stored in Raft so every server's leadership applies the same,
// as Consul's operator/autopilot/configuration. One row at most: none
// until the first leader that may write it stores its config file's.

const tableAutopilot = "autopilot"

// AutopilotConfig is the stored autopilot configuration. Field names are
// Consul's.
type AutopilotConfig struct {
	// CleanupDeadServers lets the leader remove servers gossip declared
	// failed from the Raft configuration.
	CleanupDeadServers bool
	// LastContactThreshold: a server that has not heard from the leader
	// for longer is unhealthy.
	LastContactThreshold time.Duration
	// MaxTrailingLogs: a server more entries behind the leader is
	// unhealthy.
	MaxTrailingLogs uint64
	// MinQuorum: dead servers are never removed below this many voters.
	MinQuorum uint
	// ServerStabilizationTime is how long a new server must stay healthy
	// before it gets a vote.
	ServerStabilizationTime time.Duration
	// RedundancyZoneTag, DisableUpgradeMigration and UpgradeVersionTag
	// are Consul Enterprise settings: stored and returned, so tools that
	// send them work, but nothing acts on them.
	RedundancyZoneTag       string
	DisableUpgradeMigration bool
	UpgradeVersionTag       string

	CreateIndex uint64
	ModifyIndex uint64
}

// MarshalJSON writes the durations as Go duration strings ("200ms"), as
// Consul's operator/autopilot/configuration does.
func (c AutopilotConfig) MarshalJSON() ([]byte, error) {
	type plain AutopilotConfig
	return json.Marshal(struct {
		plain
		LastContactThreshold    string // shadows plain's
		ServerStabilizationTime string
	}{plain(c), c.LastContactThreshold.String(), c.ServerStabilizationTime.String()})
}

// Bounds of a stored configuration (the config file's autopilot block
// keeps to them too).
const (
	MaxAutopilotDuration     = 24 * time.Hour
	MaxAutopilotTrailingLogs = uint64(1) << 40
	MaxAutopilotMinQuorum    = 1 << 16
	maxAutopilotTag          = 256
)

// Validate checks a configuration before it is stored; errors wrap
// ErrInvalid and name the field.
func (c *AutopilotConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	switch {
	case c.LastContactThreshold <= 0 || c.LastContactThreshold > MaxAutopilotDuration:
		return bad("LastContactThreshold %v: must be positive and at most %v", c.LastContactThreshold, MaxAutopilotDuration)
	case c.ServerStabilizationTime < 0 || c.ServerStabilizationTime > MaxAutopilotDuration:
		return bad("ServerStabilizationTime %v: must be between 0 and %v", c.ServerStabilizationTime, MaxAutopilotDuration)
	case c.MaxTrailingLogs > MaxAutopilotTrailingLogs:
		return bad("MaxTrailingLogs %d: must be at most %d", c.MaxTrailingLogs, MaxAutopilotTrailingLogs)
	case c.MinQuorum > MaxAutopilotMinQuorum:
		return bad("MinQuorum %d: must be at most %d", c.MinQuorum, MaxAutopilotMinQuorum)
	}
	for _, f := range []struct{ name, v string }{{"RedundancyZoneTag", c.RedundancyZoneTag}, {"UpgradeVersionTag", c.UpgradeVersionTag}} {
		if len(f.v) > maxAutopilotTag {
			return bad("%s: at most %d bytes, got %d", f.name, maxAutopilotTag, len(f.v))
		}
		if err := validKey(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// AutopilotConfigRequest stores an autopilot configuration.
type AutopilotConfigRequest struct {
	// Datacenter, when another than the receiving server's, makes it
	// forward the request there; the catalog ignores it.
	Datacenter string
	Config     AutopilotConfig
	// CAS stores Config only if the stored configuration's ModifyIndex is
	// Index, with 0 meaning that none is stored yet; otherwise the write
	// fails with ErrCASConflict and changes nothing.
	CAS   bool
	Index uint64
	WriteRequest
}

func autopilotTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableAutopilot,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:   indexID,
				Unique: true,
				// One row: every configuration has the same key.
				Indexer: &memdb.ConditionalIndex{Conditional: func(any) (bool, error) { return true, nil }},
			},
		},
	}
}

// SetAutopilotConfig stores req.Config at index idx, keeping the stored
// configuration's CreateIndex; see AutopilotConfigRequest.CAS.
func (s *Store) SetAutopilotConfig(idx uint64, req *AutopilotConfigRequest) error {
	if err := req.Config.Validate(); err != nil {
		return err
	}
	return s.write(func(tx *memdb.Txn) error {
		raw, err := tx.First(tableAutopilot, indexID)
		if err != nil {
			return err
		}
		c := req.Config
		c.CreateIndex, c.ModifyIndex = idx, idx
		var modify uint64
		if raw != nil {
			existing := raw.(*AutopilotConfig)
			c.CreateIndex, modify = existing.CreateIndex, existing.ModifyIndex
		}
		if req.CAS && req.Index != modify {
			return fmt.Errorf("%w: autopilot configuration: stored at index %d, not %d", ErrCASConflict, modify, req.Index)
		}
		if err := tx.Insert(tableAutopilot, &c); err != nil {
			return err
		}
		return setIndex(tx, tableAutopilot, idx)
	})
}

// AutopilotConfig returns the stored configuration, nil when none is, and
// the index of its last change.
func (s *Store) AutopilotConfig(ws memdb.WatchSet) (uint64, *AutopilotConfig, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	ch, raw, err := tx.FirstWatch(tableAutopilot, indexID)
	if err != nil {
		return 0, nil, err
	}
	addWatch(ws, ch)
	if raw == nil {
		return maxIndex(tx, tableAutopilot), nil, nil
	}
	return maxIndex(tx, tableAutopilot), raw.(*AutopilotConfig), nil
}
