// Package nodetest starts real meshd agents on loopback for tests: free
// ports, real Raft, real DNS and HTTP listeners, logs to t.Log.
package nodetest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/wan"
)

// Options tune a test agent.
type Options struct {
	// DataDir keeps state on disk; empty runs in memory.
	DataDir string
	// NodeName defaults to "node1".
	NodeName string
	// ConfigFiles are loaded as with -config-file.
	ConfigFiles []string
	// LogLevel for t.Log output; the default shows warnings and errors.
	LogLevel slog.Level
	// Edit changes the flag overlay before Load.
	Edit func(f *config.File)
	// Quiet discards the agent's logs: fuzz targets may not call t.Log
	// from the agent's goroutines.
	Quiet bool

	// Cluster starts a cluster member instead of a -dev server: a server
	// (or, with Client, a client agent) with its state in DataDir (a temp
	// dir when empty) that joins Join at start and, as a server, forms
	// Raft with BootstrapExpect servers.
	Cluster         bool
	Client          bool
	BootstrapExpect int
	Join            []string
	// RaftMultiplier for cluster servers; 0 means 2, loose enough for
	// -race on a loaded 2-core machine.
	RaftMultiplier int
	// LANGossip keeps the production LAN gossip timings instead of the
	// fast test ones, to measure failure detection as deployed.
	LANGossip bool
	// ServerFailGrace, when set, is how long a failed server keeps its
	// Raft vote.
	ServerFailGrace time.Duration
	// Datacenter defaults to "dc1".
	Datacenter string
	// WAN runs a server's WAN gossip pool (on a free port, with the fast
	// test timings); otherwise ports.serf_wan is -1.
	WAN bool
	// Consensus edits a server's Raft settings (node.WithConsensusConfig).
	Consensus func(*consensus.Config)
	// Gossip edits the LAN gossip settings last, after the test timings:
	// tests use it to advertise what an older build would (its tags).
	Gossip func(*gossip.Config)
}

// Agent is a started agent with its addresses.
type Agent struct {
	*node.Agent
	// HTTP is "http://127.0.0.1:port".
	HTTP string
	// DNS is "127.0.0.1:port" for UDP and TCP alike.
	DNS string
}

// Start starts an agent on 127.0.0.1 with ephemeral ports (a -dev server
// unless opts.Cluster) and waits until it answers. It is shut down at test
// cleanup.
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	a := Launch(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatalf("agent %s not ready: %v", a.HTTP, err)
	}
	return a
}

// Launch starts an agent like Start but does not wait for it to be ready:
// cluster servers are ready only once enough of them run.
func Launch(t testing.TB, opts Options) *Agent {
	t.Helper()
	cfg := Config(t, opts)
	logger := Logger(t, opts.LogLevel)
	if opts.Quiet {
		logger = slog.New(slog.DiscardHandler)
	}
	var nopts []node.Option
	if !opts.LANGossip || opts.Gossip != nil {
		nopts = append(nopts, node.WithGossipConfig(func(c *gossip.Config) {
			if !opts.LANGossip {
				FastGossip(c)
			}
			if opts.Gossip != nil {
				opts.Gossip(c)
			}
		}))
	}
	if opts.ServerFailGrace > 0 {
		nopts = append(nopts, node.WithServerFailGrace(opts.ServerFailGrace))
	}
	if opts.WAN {
		nopts = append(nopts, node.WithWANGossipConfig(wan.TestTimings))
	}
	if opts.Consensus != nil {
		nopts = append(nopts, node.WithConsensusConfig(opts.Consensus))
	}
	a, err := node.New(cfg, logger, nopts...)
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &Agent{Agent: a, HTTP: "http://" + a.HTTPAddr(), DNS: a.DNSAddr()}
}

// StartCluster starts servers servers (bootstrapping from
// -bootstrap-expect) and clients client agents, all joined through the
// first server, and waits until every one answers. Names are server1...
// and client1...
func StartCluster(t testing.TB, servers, clients int) []*Agent {
	return StartClusterWith(t, servers, clients, Options{})
}

// StartClusterWith is StartCluster with base options for every agent
// (RaftMultiplier, LANGossip...).
func StartClusterWith(t testing.TB, servers, clients int, base Options) []*Agent {
	t.Helper()
	var all []*Agent
	var join []string
	for i := range servers {
		o := base
		o.Cluster, o.NodeName, o.BootstrapExpect, o.Join = true, fmt.Sprintf("server%d", i+1), servers, join
		a := Launch(t, o)
		if join == nil {
			join = []string{a.GossipAddr()}
		}
		all = append(all, a)
	}
	for i := range clients {
		o := base
		o.Cluster, o.Client, o.NodeName, o.Join = true, true, fmt.Sprintf("client%d", i+1), join
		all = append(all, Launch(t, o))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, a := range all {
		if err := a.WaitReady(ctx); err != nil {
			t.Fatalf("agent %s not ready: %v", a.HTTP, err)
		}
	}
	return all
}

// Config builds the runtime config Start uses.
func Config(t testing.TB, opts Options) *config.Runtime {
	t.Helper()
	zero, loopback := 0, "127.0.0.1"
	name := opts.NodeName
	if name == "" {
		name = "node1"
	}
	lo := config.LoadOptions{Dev: !opts.Cluster, ConfigFiles: opts.ConfigFiles}
	f := &lo.Flags
	if opts.Cluster {
		server := !opts.Client
		f.Server = &server
		if opts.DataDir == "" {
			opts.DataDir = t.TempDir()
		}
		if server && opts.BootstrapExpect > 0 {
			f.BootstrapExpect = &opts.BootstrapExpect
		}
		f.StartJoin = opts.Join
		mult := opts.RaftMultiplier
		if mult == 0 {
			mult = 2
		}
		f.Performance.RaftMultiplier = &mult
	}
	f.NodeName = &name
	f.Ports.HTTP, f.Ports.DNS, f.Ports.Server, f.Ports.SerfLAN = &zero, &zero, &zero, &zero
	wanPort := -1
	if opts.WAN {
		wanPort = 0
	}
	f.Ports.SerfWAN = &wanPort
	if opts.Datacenter != "" {
		f.Datacenter = &opts.Datacenter
	}
	f.BindAddr, f.ClientAddr = &loopback, &loopback
	if opts.DataDir != "" {
		f.DataDir = &opts.DataDir
	}
	if opts.Edit != nil {
		opts.Edit(f)
	}
	cfg, _, err := config.Load(lo)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// Logger sends records at level and above to t.Log until the test ends;
// later records are dropped (memberlist's probe goroutines can log after
// its Shutdown returns, and t.Log after a test ends panics).
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	if level == 0 {
		level = slog.LevelWarn
	}
	w := &tWriter{t: t}
	t.Cleanup(w.close) // registered first, so it runs after the agents stop
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	t      testing.TB
	mu     sync.Mutex // guards closed
	closed bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// FastGossip swaps the LAN gossip timings for gossip.TestConfig's, keeping
// the agent's identity, addresses and handlers: failures are noticed in
// about a second instead of several.
func FastGossip(c *gossip.Config) {
	fast := gossip.TestConfig()
	fast.NodeName, fast.BindAddr, fast.BindPort = c.NodeName, c.BindAddr, c.BindPort
	fast.AdvertiseAddr, fast.AdvertisePort, fast.Tags = c.AdvertiseAddr, c.AdvertisePort, c.Tags
	fast.SnapshotPath, fast.RejoinAfterLeave = c.SnapshotPath, c.RejoinAfterLeave
	fast.EventHandler, fast.Logger, fast.ReconnectTimeout = c.EventHandler, c.Logger, c.ReconnectTimeout
	*c = fast
}
