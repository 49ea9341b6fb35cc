// Package servertest starts a lone server's side in-process, for tests
// of the packages that call the servers: a single-server Raft group that
// leads, its catalog, and the server's methods bound to an rpc.Server,
// which is an rpc.Caller.
package servertest

import (
	"testing"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/consensus/consensustest"
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

// Start starts a lone server on an in-memory Raft group (consensustest)
// and waits until it leads.
func Start(t testing.TB) *Server {
	t.Helper()
	r, store := consensustest.StartLone(t)
	d := rpc.NewServer(rpc.ServerConfig{Codes: server.Codes, Stopped: server.ErrShutdown})
	server.New(server.Config{Raft: r, Store: store, Datacenter: Datacenter}).Bind(d)
	return &Server{Raft: r, Store: store, RPC: d}
}
