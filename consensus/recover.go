package consensus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	"github.com/meshd/meshd/catalog"
)

// Manual recovery of a datacenter that lost its quorum for good, as
// Consul does it: the operator stops every surviving server, writes
// raft/peers.json in each one's data directory with the servers that are
// to form the new configuration, and starts them again. Each reads the
// file before Raft starts, rewrites its own state to that configuration
// and deletes the file.
const (
	peersFile = "peers.json"
	peersInfo = "peers.info"
	// maxPeersFile bounds what is read of peers.json.
	maxPeersFile = 1 << 20
)

const peersInfoText = `This directory may hold a peers.json file, written by an operator for
the manual recovery of a datacenter that lost its quorum for good (more
than half of its servers gone and never coming back): a lone server left
of three, or one of two voters.

Stop every surviving server. On each, write raft/peers.json listing the
servers that are to form the new configuration, the same file on every
one:

[
  {"id": "<node ID of the server, from its data dir's node-id file>",
   "address": "<its address and server port, e.g. 10.0.0.1:8300>",
   "non_voter": false}
]

Then start them. Each reads the file before Raft starts, rewrites its
own Raft state to that configuration (committing every entry in its log)
and deletes the file. Only servers that held the latest writes should be
listed: whatever a missing server alone had acknowledged is lost.

A peers.json written while the datacenter still has a leader replaces
the configuration that leader is using: never do that. To take one dead
server out of a healthy datacenter, use meshd operator raft remove-peer.
`

// recoverFromPeersFile applies raft/peers.json, if the operator put one
// there, before Raft starts; it also leaves peers.info, which explains
// the file, in the Raft directory.
func (s *Server) recoverFromPeersFile(rc *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) error {
	dir := filepath.Join(s.cfg.DataDir, "raft")
	if _, err := os.Stat(filepath.Join(dir, peersInfo)); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(filepath.Join(dir, peersInfo), []byte(peersInfoText), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", peersInfo, err)
		}
	}
	path := filepath.Join(dir, peersFile)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	if st.Size() > maxPeersFile {
		return fmt.Errorf("recovery failed to parse %s: %d bytes, at most %d", path, st.Size(), maxPeersFile)
	}
	s.logger.Info("found peers.json, recovering the Raft configuration", "file", path)
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return fmt.Errorf("recovery failed to parse %s: %w", path, err)
	}
	// RecoverCluster replays the log into an FSM to snapshot it; a scratch
	// one, as Raft restores this server's own from that snapshot.
	scratch := NewFSM(catalog.NewStore(), s.logger)
	if err := raft.RecoverCluster(rc, scratch, logs, stable, snaps, s.transport, conf); err != nil {
		return fmt.Errorf("recovery failed: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("recovery failed to delete %s, delete it by hand (see %s): %w", path, peersInfo, err)
	}
	s.logger.Info("recovered the Raft configuration from peers.json and deleted the file", "servers", len(conf.Servers))
	return nil
}
