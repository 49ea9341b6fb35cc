package server

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/wan"
)

var (
	// ErrShutdown answers a call the server's stop cut short: the caller
	// tries another server.
	ErrShutdown = errors.New("agent shut down")
	// ErrRateLimited refuses a call from a client over its RPC rate
	// (limits.rpc_rate_per_client); HTTP answers it with 429.
	ErrRateLimited = errors.New("rate limit exceeded")
	// ErrTooManyBlocking refuses a blocking query from a client that holds
	// limits.max_blocking_queries_per_client open already; HTTP 429.
	ErrTooManyBlocking = errors.New("too many concurrent blocking queries")
	// ErrNoServers means a client agent knows no server to ask.
	ErrNoServers = errors.New("no known servers")
)

// Codes are the sentinel errors whose codes cross the wire, for servers
// and their callers alike. Their texts are what builds before codes
// matched by prefix, so they never change.
var Codes = rpc.Codes{
	{Name: "invalid", Err: catalog.ErrInvalid},
	{Name: "not_found", Err: catalog.ErrNotFound},
	{Name: "bad_filter", Err: catalog.ErrBadFilter},
	{Name: "cas_conflict", Err: catalog.ErrCASConflict},
	{Name: "not_leader", Err: consensus.ErrNotLeader},
	{Name: "not_ready", Err: consensus.ErrNotReady},
	{Name: "shutdown", Err: ErrShutdown},
	{Name: "rate_limited", Err: ErrRateLimited},
	{Name: "too_many_blocking", Err: ErrTooManyBlocking},
	{Name: "no_path", Err: wan.ErrNoPath},
	{Name: "unreachable", Err: wan.ErrUnreachable},
}

// Config is what a Server answers from.
type Config struct {
	Raft  *consensus.Server
	Store *catalog.Store
	// Pool carries the calls this server forwards: to the leader, and to
	// other datacenters.
	Pool *rpc.Pool
	// Datacenter is this server's; WAN routes requests for the others
	// (nil when the WAN pool is disabled: no other datacenter is known).
	Datacenter string
	WAN        *wan.Router
	// Logger hears of failed forwards and removed peers (nil: none).
	Logger *slog.Logger
	// Node is this server's node name, in the answers it gives.
	Node string
	// Health is the leader's latest autopilot view of the servers; nil
	// until it has looked once in its term.
	Health func() *rpc.AutopilotHealth
	// AutopilotFile is the autopilot configuration of this server's config
	// files, which holds until one is stored; ServersRead reports whether
	// every server reads a log format (the fsm gossip tag).
	AutopilotFile catalog.AutopilotConfig
	ServersRead   func(format int) bool
}

// Server answers the RPC surface (the methods declared in this package)
// from this server's catalog, forwarding to the leader or another
// datacenter what it may not answer itself. Bind serves it; the agent
// calls it in-process through the rpc.Server it is bound to.
type Server struct {
	raft   *consensus.Server
	store  *catalog.Store
	pool   *rpc.Pool
	dc     string
	wan    *wan.Router
	logger *slog.Logger
	node   string
	health func() *rpc.AutopilotHealth

	autopilotFile catalog.AutopilotConfig
	serversRead   func(format int) bool
}

// New returns a Server answering from cfg. It starts nothing.
func New(cfg Config) *Server {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	health, serversRead := cfg.Health, cfg.ServersRead
	if health == nil {
		health = func() *rpc.AutopilotHealth { return nil }
	}
	if serversRead == nil {
		serversRead = func(int) bool { return true }
	}
	return &Server{raft: cfg.Raft, store: cfg.Store, pool: cfg.Pool, dc: cfg.Datacenter, wan: cfg.WAN,
		logger: logger, node: cfg.Node, health: health, autopilotFile: cfg.AutopilotFile, serversRead: serversRead}
}

// surface holds every method a server answers; each is declared beside
// the method of Server that answers it.
var surface rpc.Surface[*Server]

// Bind registers every method of the surface on d, answered by s.
func (s *Server) Bind(d *rpc.Server) { surface.Bind(d, s) }

// remoteDC reports whether dc names a datacenter other than this one.
func (s *Server) remoteDC(dc string) bool {
	return dc != "" && !strings.EqualFold(dc, s.dc)
}

// Unavailable reports whether err means the server asked could not
// answer for its cluster now (unreachable, cut off from the quorum,
// replaying its log, stopping), so another server may.
func Unavailable(err error) bool {
	return rpc.IsTransportError(err) || errors.Is(err, consensus.ErrNotLeader) ||
		errors.Is(err, consensus.ErrNotReady) || errors.Is(err, ErrShutdown)
}
