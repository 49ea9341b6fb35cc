// Package servertest starts a lone server's side in-process, for tests
// of the packages that call the servers: a single-server Raft group that
// leads, its catalog, and the server's methods bound to an rpc.Server,
// which is an rpc.Caller.
package servertest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// Datacenter is the lone server's datacenter.
const Datacenter = "dc1"

// Server is a lone server, leading, stopped when the test ends.
type Server struct {
	Raft  *consensus.Server
	Store *catalog.Store
	// RPC answers the server's methods in-process.
	RPC *rpc.Server
}

// Start starts a lone server on an in-memory Raft group and waits until
// it leads.
func Start(t testing.TB) *Server {
	t.Helper()
	store := catalog.NewStore()
	cfg := consensus.DefaultConfig()
	cfg.NodeID = "11111111-2222-3333-4444-555555555555"
	cfg.Advertise = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	cfg.Bootstrap = true
	cfg.Raft = consensus.DevRaftConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	r, err := consensus.New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	testkit.Eventually(t, 10*time.Second, "the lone server leads", r.IsLeader)
	d := rpc.NewServer(rpc.ServerConfig{Codes: server.Codes, Stopped: server.ErrShutdown})
	server.New(server.Config{Raft: r, Store: store, Datacenter: Datacenter}).Bind(d)
	return &Server{Raft: r, Store: store, RPC: d}
}
