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
	"github.com/meshd/meshd/catalog/balance"
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
	cfg    *config.Runtime
	logger *slog.Logger // this component's
	root   *slog.Logger // handed to the components, which name themselves

	store *catalog.Store
	local *local.State

	// Set by Start.
	nodeID    string
	advertise netip.Addr
	node      local.Node // how this node appears in the catalog
	pool      *rpc.Pool
	// rpc answers the server surface, over the server port and
	// in-process; srv is what it answers from (both nil on a client).
	rpc    *rpc.Server
	srv    *server.Server
	duties *server.Duties
	raft   *consensus.Server
	// servers takes the agent's calls to the servers: rpc on a server, a
	// remote caller on a client.
	servers  rpc.Caller
	runner   *checks.Runner
	external *server.ExternalChecks
	registry *local.Registry
	dns      *dns.Server
	http     *http.Server
	httpAPI  *httpapi.API

	serverLn net.Listener
	httpLns  []net.Listener
	dnsUDP   []net.PacketConn
	dnsTCP   []net.Listener

	mu       sync.Mutex // guards started and shutdown
	started  bool
	shutdown bool

	opts   options
	gossip *gossip.Pool
	// wan is a server's WAN pool (nil on clients, or with ports.serf_wan
	// = -1); floodCh wakes its flood join.
	wan     *wan.Pool
	floodCh chan struct{}
	// balancer remembers round-robin and least-recent turns for
	// /v1/lb/service.
	balancer *balance.Balancer
	// cache holds a client agent's watched health/service answers; nil on
	// servers, which read their own catalog.
	cache *client.Cache
	// metrics are served at /v1/agent/metrics; limits hold a server's
	// clients to their share (nil on client agents).
	metrics       *agentMetrics
	limits        *server.Limits
	memberEvents  chan gossip.Event // for the leader's reconciliation
	eventsDropped atomic.Bool       // the queue overflowed: reconcile all
	membersCh     chan struct{}     // a token per membership change
	leftCh        chan struct{}     // closed by Leave
	leftOnce      sync.Once

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
		cfg:          cfg,
		logger:       logger.With("component", "agent"),
		root:         logger,
		store:        catalog.NewStore(),
		memberEvents: make(chan gossip.Event, memberEventBuffer),
		membersCh:    make(chan struct{}, 1),
		floodCh:      make(chan struct{}, 1),
		leftCh:       make(chan struct{}),
		balancer:     balance.New(0),
		metrics:      newAgentMetrics(),
	}
	for _, o := range opts {
		o(&a.opts)
	}
	return a, nil
}

// Start binds the agent's ports, starts Raft, loads the local state and
// starts serving. On error everything it started is stopped again.
func (a *Agent) Start(ctx context.Context) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shutdown {
		return ErrShutdown
	}
	if a.started {
		return errors.New("agent already started")
	}
	a.started = true
	defer func() {
		if err != nil {
			a.mu.Unlock()
			a.Shutdown(context.Background())
			a.mu.Lock()
		}
	}()
	bg, cancel := context.WithCancel(context.Background())
	a.cancel = cancel

	if a.nodeID = a.cfg.NodeID; a.nodeID == "" {
		if a.nodeID, err = loadNodeID(a.cfg.DataDir); err != nil {
			return err
		}
	}
	a.pool = rpc.NewPool(10*time.Second, rpc.Hello{Node: a.cfg.NodeName, Server: a.cfg.ServerMode}, server.Codes)
	if a.advertise, err = advertiseAddr(a.cfg); err != nil {
		return err
	}
	a.node = local.Node{
		ID: a.nodeID, Name: a.cfg.NodeName, Address: a.advertise.String(), Datacenter: a.cfg.Datacenter,
		TaggedAddresses: map[string]string{"lan": a.advertise.String(), "wan": a.advertise.String()},
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
	a.local = local.New(local.Config{Node: a.node, Servers: a.servers, OutputInterval: a.cfg.CheckUpdateInterval,
		FullSyncInterval: fullSyncInterval, Logger: a.root.With("component", "sync")})
	if a.runner, err = checks.NewRunner(checks.Config{
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
	a.registry = local.NewRegistry(local.RegistryConfig{State: a.local, Runner: a.runner, DataDir: dataDir,
		EnableScriptChecks: a.cfg.EnableScriptChecks, EnableLocalScriptChecks: a.cfg.EnableLocalScriptChecks, Logger: a.logger})
	if a.cfg.ServerMode {
		if a.external, err = server.NewExternalChecks(server.ExternalConfig{NodeID: a.nodeID, Raft: a.raft, Store: a.store,
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
	if a.raft != nil {
		if err := a.raft.Start(ctx); err != nil {
			return err
		}
	}
	if a.cfg.ServerMode && a.cfg.BootstrapExpect > 1 {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.bootstrapLoop(bg)
		}()
	}
	if err := a.registry.Load(copyDefs(a.cfg.Services), a.cfg.Checks); err != nil {
		return err
	}
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		a.local.Run(bg)
	}()
	go func() {
		defer a.wg.Done()
		a.registry.Run(bg)
	}()
	if a.external != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.external.Run(bg)
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
		"node_id", a.nodeID, "server", a.advertise.String(), "http", addrsOf(a.httpLns), "dns", addrsOf(a.dnsTCP))
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
	a.mu.Lock()
	if a.shutdown {
		a.mu.Unlock()
		return nil
	}
	a.shutdown = true
	a.mu.Unlock()

	var errs []error
	if a.cancelRequests != nil {
		a.cancelRequests()
	}
	if a.http != nil {
		if err := a.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
			a.http.Close()
		}
	}
	if a.dns != nil {
		if err := a.dns.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("dns: %w", err))
		}
	}
	if a.runner != nil {
		if err := a.runner.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("checks: %w", err))
		}
	}
	if a.cancel != nil {
		a.cancel() // the loops: sync, reaper, state saver (which flushes), external checks
	}
	if a.cache != nil {
		a.cache.Close()
	}
	if a.external != nil {
		if err := a.external.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("external checks: %w", err))
		}
	}
	if a.gossip != nil {
		if err := a.gossip.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gossip: %w", err))
		}
	}
	if a.wan != nil {
		if err := a.wan.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("wan gossip: %w", err))
		}
	}
	if a.serverLn != nil {
		a.serverLn.Close()
	}
	if a.rpc != nil {
		if err := a.rpc.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("rpc calls in flight: %w", err))
		}
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.raft != nil {
		if err := a.raft.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("raft: %w", err))
		}
	}
	for _, pc := range a.dnsUDP {
		pc.Close()
	}
	for _, ln := range append(a.dnsTCP, a.httpLns...) {
		ln.Close()
	}
	a.wg.Wait()
	return errors.Join(errs...)
}

// WaitReady blocks until the agent can answer: a server's catalog has a
// leader and has replayed its log; and the first sync of the local state
// (which needs a server) is done. It returns ctx's error if ctx ends
// first.
func (a *Agent) WaitReady(ctx context.Context) error {
	if a.raft != nil {
		if err := a.raft.WaitForLeader(ctx); err != nil {
			return err
		}
		select {
		case <-a.raft.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !a.local.WaitFor(ctx, a.local.CurrentGen()) {
		return ctx.Err()
	}
	return nil
}

// ServerAddr is the address of the server port (Raft and RPC).
func (a *Agent) ServerAddr() string {
	if a.serverLn == nil {
		return ""
	}
	return a.serverLn.Addr().String()
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
	n.a.registry.UpdateCheck(id, status, output)
}
