// Package consensustest starts Raft groups for tests of the packages
// above consensus.
package consensustest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/internal/testkit"
)

// StartLone starts a single-server Raft group in memory over a new
// catalog, waits until it leads, and stops it when the test ends.
func StartLone(t testing.TB) (*consensus.Server, *catalog.Store) {
	t.Helper()
	store := catalog.NewStore()
	cfg := consensus.DefaultConfig()
	cfg.NodeID = "11111111-2222-3333-4444-555555555555"
	cfg.Advertise = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	cfg.Bootstrap = true
	cfg.Raft = consensus.DevRaftConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := consensus.New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	testkit.Eventually(t, 10*time.Second, "the lone server leads", srv.IsLeader)
	return srv, store
}
