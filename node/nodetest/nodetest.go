// Package nodetest starts real meshd agents on loopback for tests: free
// ports, real Raft, real DNS and HTTP listeners, logs to t.Log.
package nodetest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
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
}

// Agent is a started agent with its addresses.
type Agent struct {
	*node.Agent
	// HTTP is "http://127.0.0.1:port".
	HTTP string
	// DNS is "127.0.0.1:port" for UDP and TCP alike.
	DNS string
}

// Start starts a dev-mode server agent on 127.0.0.1 with ephemeral ports
// and waits until it leads and answers. It is shut down at test cleanup.
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	cfg := Config(t, opts)
	logger := Logger(t, opts.LogLevel)
	if opts.Quiet {
		logger = slog.New(slog.DiscardHandler)
	}
	a, err := node.New(cfg, logger, node.WithGossipConfig(FastGossip))
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatalf("agent not ready: %v", err)
	}
	return &Agent{Agent: a, HTTP: "http://" + a.HTTPAddr(), DNS: a.DNSAddr()}
}

// Config builds the runtime config Start uses.
func Config(t testing.TB, opts Options) *config.Runtime {
	t.Helper()
	zero, loopback := 0, "127.0.0.1"
	name := opts.NodeName
	if name == "" {
		name = "node1"
	}
	lo := config.LoadOptions{Dev: true, ConfigFiles: opts.ConfigFiles}
	f := &lo.Flags
	f.NodeName = &name
	f.Ports.HTTP, f.Ports.DNS, f.Ports.Server, f.Ports.SerfLAN = &zero, &zero, &zero, &zero
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

// Logger sends records at level and above to t.Log.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	if level == 0 {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Eventually polls cond every 10 ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
