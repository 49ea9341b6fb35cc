package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
)

// shutdownTimeout bounds a graceful stop (leave and shutdown); a second
// signal skips it.
const shutdownTimeout = 30 * time.Second

func runAgent(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := config.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshd agent: unexpected arguments: %v\n", fs.Args())
		return 1
	}
	cfg, warnings, err := config.Load(*opts)
	if err != nil {
		fmt.Fprintf(stderr, "meshd agent: config: %v\n", err)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	for _, w := range warnings {
		logger.Warn(w)
	}
	if gc, ok := serverGC(cfg.ServerMode, os.Getenv); ok {
		debug.SetGCPercent(gc)
	}
	a, err := node.New(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "meshd agent: %v\n", err)
		return 1
	}
	sigCh := make(chan os.Signal, 2)
	signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigCh)

	if err := a.Start(context.Background()); err != nil {
		fmt.Fprintf(stderr, "meshd agent: %v\n", err)
		return 1
	}
	if cfg.DevMode {
		fmt.Fprintf(stdout, "meshd agent running in dev mode: HTTP on %s, DNS on %s (state in memory)\n", a.HTTPAddr(), a.DNSAddr())
	}
	var leave bool
	select {
	case sig := <-sigCh:
		// As DESIGN.md says: a client leaves on SIGTERM and SIGINT, a server
		// only shuts down (keeping its place and data for a restart), unless
		// leave_on_terminate / skip_leave_on_interrupt say otherwise.
		leave = (sig == syscall.SIGTERM && cfg.LeaveOnTerminate) || (sig == syscall.SIGINT && !cfg.SkipLeaveOnInterrupt)
		logger.Info("caught signal", "signal", sig.String(), "leave", leave)
	case <-a.LeftCh():
		logger.Info("left the cluster (agent/leave); shutting down")
	}
	return stop(a, leave, sigCh, logger)
}

// serverGCPercent is the Go collector's target on a server. A server holds
// the whole catalog in its heap, and Go's default (100) lets the heap grow
// to twice the live data between collections: at 100,000 instances (146 MB
// live) that is over 300 MB of RSS. 70 keeps it under, for about 4 % more
// CPU per write (BENCHMARKS.md, bench-scale).
const serverGCPercent = 70

// serverGC says which GC percent to set: serverGCPercent on a server,
// unless the operator chose with GOGC or GOMEMLIMIT.
func serverGC(server bool, getenv func(string) string) (int, bool) {
	if !server || getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	return serverGCPercent, true
}

// stopper is what stop needs of an agent.
type stopper interface {
	Leave(context.Context) error
	Shutdown(context.Context) error
}

// stop leaves the cluster if leave is set, then shuts a down, the two
// within shutdownTimeout from now (not from the agent's start). A signal
// on sigCh during either gives up on them at once: stop returns 1 without
// waiting, and the process exits.
func stop(a stopper, leave bool, sigCh <-chan os.Signal, logger *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		if leave {
			if err := a.Leave(ctx); err != nil {
				logger.Warn("leave", "error", err)
			}
		}
		done <- a.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			logger.Error("shutdown", "error", err)
			return 1
		}
		return 0
	case sig := <-sigCh:
		logger.Warn("second signal, exiting now", "signal", sig.String())
		return 1
	}
}
