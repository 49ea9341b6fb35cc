package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/dns"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/node/client"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/httpapi"
	"github.com/meshd/meshd/node/local"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
	"github.com/meshd/meshd/wan"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrShutdown is returned by Start on an agent that was shut down,
	// and by calls its stop cut short.
	ErrShutdown = server.ErrShutdown
)

// Version is this build's version.
const Version = "0.1.0"

// fullSyncInterval is how often the agent compares its whole local state
// with the catalog (plus up to a quarter of it as jitter).
const fullSyncInterval = time.Minute

// Agent is one meshd agent. Create it with New, start it with Start, stop
// it with Shutdown. Its methods are safe for concurrent use.
type Agent struct {
	cfg     *config.Runtime
	logger  *slog.Logger // this component's
	root    *slog.Logger // handed to the components, which name themselves
	opts    options
	metrics *agentMetrics // served at /v1/agent/metrics

	// Set by Start.
	self   identity
	own    ownParts
	gossip *gossip.Pool
	pool   *rpc.Pool
	// servers takes the agent's calls to the servers: server.rpc on a
	// server, a remote caller on a client.
	servers rpc.Caller
	// server is what only a server runs (nil on a client agent); cache
	// holds a client agent's watched health/service answers (nil on a
	// server, which reads its own catalog).
	server  *serverParts
	cache   *client.Cache
	front   frontEnds
	members memberQueue
	life    lifecycle
}

// identity is who this agent is.
type identity struct {
	nodeID    string
	advertise netip.Addr
	node      local.Node // how this node appears in the catalog
}

// ownParts are the agent's own services and checks: the local state and
// its sync, the registrations, and the check runner.
type ownParts struct {
	state    *local.State
	registry *local.Registry
	runner   *checks.Runner
}

// serverParts are what a server agent runs besides what every agent does.
type serverParts struct {
	ln    net.Listener // the server port: Raft and RPC
	store *catalog.Store
	raft  *consensus.Server
	// rpc answers the server surface, over the server port and
	// in-process; srv is what it answers from.
	rpc      *rpc.Server
	srv      *server.Server
	duties   *server.Duties
	limits   *server.Limits
	external *server.ExternalChecks
	// wan is the WAN pool (nil with ports.serf_wan = -1); floodCh wakes
	// its flood join.
	wan     *wan.Pool
	floodCh chan struct{}
}

// frontEnds are the agent's HTTP API and DNS server, and their listeners.
type frontEnds struct {
	dns     *dns.Server
	http    *http.Server
	api     *httpapi.API
	httpLns []net.Listener
	dnsUDP  []net.PacketConn
	dnsTCP  []net.Listener
}

// memberQueue carries gossip's news: member events for the leader's
// reconciliation, and the agent's own leave.
type memberQueue struct {
	events    chan gossip.Event // for the leader's reconciliation
	dropped   atomic.Bool       // the queue overflowed: reconcile all
	changedCh chan struct{}     // a token per membership change
	leftCh    chan struct{}     // closed by Leave
	leftOnce  sync.Once
}

// lifecycle is the agent's start and stop.
type lifecycle struct {
	mu       sync.Mutex // guards started and shutdown
	started  bool
	shutdown bool

	cancel         context.CancelFunc // ends the background loops
	cancelRequests context.CancelFunc // ends the HTTP requests in flight
	wg             sync.WaitGroup
}

// New checks cfg and prepares an agent; it opens nothing and starts
// nothing. A nil logger discards logs.
func New(cfg *config.Runtime, logger *slog.Logger, opts ...Option) (*Agent, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Agent{
		cfg:     cfg,
		logger:  logger.With("component", "agent"),
		root:    logger,
		metrics: newAgentMetrics(),
		members: memberQueue{
			events:    make(chan gossip.Event, memberEventBuffer),
			changedCh: make(chan struct{}, 1),
			leftCh:    make(chan struct{}),
		},
	}
	for _, o := range opts {
		o(&a.opts)
	}
	return a, nil
}

// Start binds the agent's ports, starts Raft, loads the local state and
// starts serving. On error everything it started is stopped again.
func (a *Agent) Start(ctx context.Context) (err error) {
	a.life.mu.Lock()
	defer a.life.mu.Unlock()
	if a.life.shutdown {
		return ErrShutdown
	}
	if a.life.started {
		return errors.New("agent already started")
	}
	a.life.started = true
	defer func() {
		if err != nil {
			a.life.mu.Unlock()
			a.Shutdown(context.Background())
			a.life.mu.Lock()
		}
	}()
	bg, cancel := context.WithCancel(context.Background())
	a.life.cancel = cancel

	if a.self.nodeID = a.cfg.NodeID; a.self.nodeID == "" {
		if a.self.nodeID, err = loadNodeID(a.cfg.DataDir); err != nil {
			return err
		}
	}
	a.pool = rpc.NewPool(10*time.Second, rpc.Hello{Node: a.cfg.NodeName, Server: a.cfg.ServerMode}, server.Codes)
	if a.self.advertise, err = advertiseAddr(a.cfg); err != nil {
		return err
	}
	a.self.node = local.Node{
		ID: a.self.nodeID, Name: a.cfg.NodeName, Address: a.self.advertise.String(), Datacenter: a.cfg.Datacenter,
		TaggedAddresses: map[string]string{"lan": a.self.advertise.String(), "wan": a.self.advertise.String()},
		Meta:            a.cfg.NodeMeta,
	}
	if a.cfg.ServerMode {
		if err := a.startServer(ctx, bg); err != nil {
			return err
		}
	} else {
		a.servers = client.NewRemote(a.pool, a.serverAddrs)
		// A client answers its host's lookups from memory, each watched
		// service kept current by one blocking query.
		a.cache = client.NewCache(func(ctx context.Context, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error) {
			return server.HealthServiceNodes.Call(ctx, a.servers, q)
		}, a.cfg.Cache, a.cfg.DNS.MaxStale, a.logger.With("component", "cache"), a.metrics.lookup)
		a.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshd_cache_entries", Help: "Answers the agent cache holds, each watched on the servers.",
		}, func() float64 { return float64(a.cache.Size()) }))
	}
	a.own.state = local.New(local.Config{Node: a.self.node, Servers: a.servers, OutputInterval: a.cfg.CheckUpdateInterval,
		FullSyncInterval: fullSyncInterval, Logger: a.root.With("component", "sync")})
	if a.own.runner, err = checks.NewRunner(checks.Config{
		Notifier:      registryNotifier{a},
		Alias:         aliasSource{a},
		Logger:        a.root.With("component", "checks"),
		EnableScripts: a.cfg.EnableScriptChecks || a.cfg.EnableLocalScriptChecks,
		Observe:       a.metrics.observeCheck,
	}); err != nil {
		return err
	}
	dataDir := a.cfg.DataDir
	if a.cfg.InMemory {
		dataDir = ""
	}
	a.own.registry = local.NewRegistry(local.RegistryConfig{State: a.own.state, Runner: a.own.runner, DataDir: dataDir,
		EnableScriptChecks: a.cfg.EnableScriptChecks, EnableLocalScriptChecks: a.cfg.EnableLocalScriptChecks, Logger: a.logger})
	if a.cfg.ServerMode {
		if a.server.external, err = server.NewExternalChecks(server.ExternalConfig{NodeID: a.self.nodeID, Raft: a.server.raft, Store: a.server.store,
			Servers: a.servers, OutputInterval: a.cfg.CheckUpdateInterval, Alias: aliasSource{a},
			Logger: a.root.With("component", "external-checks")}); err != nil {
			return err
		}
	}
	// Gossip before Raft: the leader's duties read the member list from
	// the moment this server is elected.
	if err := a.startGossip(ctx, bg); err != nil {
		return err
	}
	if a.server != nil && a.server.raft != nil {
		if err := a.server.raft.Start(ctx); err != nil {
			return err
		}
	}
	if a.cfg.ServerMode && a.cfg.BootstrapExpect > 1 {
		a.life.wg.Add(1)
		go func() {
			defer a.life.wg.Done()
			a.bootstrapLoop(bg)
		}()
	}
	if err := a.own.registry.Load(copyDefs(a.cfg.Services), a.cfg.Checks); err != nil {
		return err
	}
	a.life.wg.Add(2)
	go func() {
		defer a.life.wg.Done()
		a.own.state.Run(bg)
	}()
	go func() {
		defer a.life.wg.Done()
		a.own.registry.Run(bg)
	}()
	if a.server != nil && a.server.external != nil {
		a.life.wg.Add(1)
		go func() {
			defer a.life.wg.Done()
			a.server.external.Run(bg)
		}()
	}
	// The pools and the store exist from here on: scrapes may read them.
	a.metrics.reg.MustRegister(sizes{a})
	if err := a.startDNS(); err != nil {
		return err
	}
	if err := a.startHTTP(); err != nil {
		return err
	}
	a.logger.Info("agent started", "node", a.cfg.NodeName, "datacenter", a.cfg.Datacenter,
		"node_id", a.self.nodeID, "server", a.self.advertise.String(), "http", addrsOf(a.front.httpLns), "dns", addrsOf(a.front.dnsTCP))
	return nil
}

// advertiseAddr is the address other hosts reach this agent at.
func advertiseAddr(cfg *config.Runtime) (netip.Addr, error) {
	if cfg.AdvertiseAddr.IsValid() {
		return cfg.AdvertiseAddr, nil
	}
	if !cfg.BindAddr.IsUnspecified() {
		return cfg.BindAddr, nil
	}
	ip, err := sockaddr.GetPrivateIP()
	if err != nil || ip == "" {
		return netip.Addr{}, errors.New("no private IPv4 address found; set -advertise or -bind")
	}
	return netip.ParseAddr(ip)
}

// Shutdown stops serving, stops the loops and Raft, and waits for every
// goroutine the agent started. A server does not leave the cluster: a
// restart keeps its place and its data. Safe to call more than once.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.life.mu.Lock()
	if a.life.shutdown {
		a.life.mu.Unlock()
		return nil
	}
	a.life.shutdown = true
	a.life.mu.Unlock()

	var errs []error
	if a.life.cancelRequests != nil {
		a.life.cancelRequests()
	}
	if a.front.http != nil {
		if err := a.front.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
			a.front.http.Close()
		}
	}
	if a.front.dns != nil {
		if err := a.front.dns.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("dns: %w", err))
		}
	}
	if a.own.runner != nil {
		if err := a.own.runner.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("checks: %w", err))
		}
	}
	if a.life.cancel != nil {
		a.life.cancel() // the loops: sync, reaper, state saver (which flushes), external checks
	}
	if a.cache != nil {
		a.cache.Close()
	}
	if a.server != nil && a.server.external != nil {
		if err := a.server.external.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("external checks: %w", err))
		}
	}
	if a.gossip != nil {
		if err := a.gossip.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gossip: %w", err))
		}
	}
	if a.server != nil && a.server.wan != nil {
		if err := a.server.wan.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("wan gossip: %w", err))
		}
	}
	if a.server != nil && a.server.ln != nil {
		a.server.ln.Close()
	}
	if a.server != nil && a.server.rpc != nil {
		if err := a.server.rpc.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("rpc calls in flight: %w", err))
		}
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.server != nil && a.server.raft != nil {
		if err := a.server.raft.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("raft: %w", err))
		}
	}
	for _, pc := range a.front.dnsUDP {
		pc.Close()
	}
	for _, ln := range append(a.front.dnsTCP, a.front.httpLns...) {
		ln.Close()
	}
	a.life.wg.Wait()
	return errors.Join(errs...)
}

// WaitReady blocks until the agent can answer: a server's catalog has a
// leader and has replayed its log; and the first sync of the local state
// (which needs a server) is done. It returns ctx's error if ctx ends
// first.
func (a *Agent) WaitReady(ctx context.Context) error {
	if a.server != nil && a.server.raft != nil {
		if err := a.server.raft.WaitForLeader(ctx); err != nil {
			return err
		}
		select {
		case <-a.server.raft.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !a.own.state.WaitFor(ctx, a.own.state.CurrentGen()) {
		return ctx.Err()
	}
	return nil
}

// ServerAddr is the address of the server port (Raft and RPC).
func (a *Agent) ServerAddr() string {
	if a.server == nil || a.server.ln == nil {
		return ""
	}
	return a.server.ln.Addr().String()
}

// Config is the configuration the agent runs with.
func (a *Agent) Config() *config.Runtime { return a.cfg }

// RPCCalls reports the RPCs a client agent has sent to the servers, by
// method (nil on a server), and how many health/service answers its cache
// holds: what the agent costs the servers.
func (a *Agent) RPCCalls() (calls map[string]uint64, cacheEntries int) {
	rs, ok := a.servers.(*client.Remote)
	if !ok {
		return nil, 0
	}
	return rs.CallCounts(), a.cache.Size()
}

// gossipMembers lists the LAN pool's members (none before gossip starts).
func (a *Agent) gossipMembers() []gossip.Member {
	if a.gossip == nil {
		return nil
	}
	return a.gossip.Members()
}

// copyDefs copies the config's service definitions: registering one
// normalises it.
func copyDefs(defs []*config.ServiceDefinition) []*config.ServiceDefinition {
	out := make([]*config.ServiceDefinition, len(defs))
	for i, d := range defs {
		c := *d
		out[i] = &c
	}
	return out
}

// registryNotifier hands check results to the registry, which is made
// after the runner it drives.
type registryNotifier struct{ a *Agent }

func (n registryNotifier) UpdateCheck(id, status, output string) {
	n.a.own.registry.UpdateCheck(id, status, output)
}
