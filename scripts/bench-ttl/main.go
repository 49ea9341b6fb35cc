// Command bench-ttl measures what heartbeats cost an agent: it starts the
// real meshd binary in dev mode on loopback, registers N TTL checks, passes
// each once a second for a while, and reports the agent's CPU use, the
// heartbeat latency, and whether the Raft log grew while no status changed
// (it must not: a heartbeat that changes nothing costs no write).
//
//	go build -o bin/meshd ./cmd/meshd && go run ./scripts/bench-ttl -checks 10000 -duration 30s
//
// Traffic goes to 127.0.0.1 only; the run is bounded by -duration.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/scripts/internal/agentproc"
)

func main() {
	var (
		bin      = flag.String("meshd", "bin/meshd", "the meshd binary")
		n        = flag.Int("checks", 10000, "TTL checks to register")
		duration = flag.Duration("duration", 30*time.Second, "how long to send heartbeats (at most 10m)")
		workers  = flag.Int("workers", 64, "concurrent HTTP clients")
	)
	flag.Parse()
	if *duration > 10*time.Minute {
		fmt.Fprintln(os.Stderr, "bench-ttl: -duration is capped at 10m")
		os.Exit(2)
	}
	if err := run(*bin, *n, *duration, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ttl:", err)
		os.Exit(1)
	}
}

func run(bin string, n int, duration time.Duration, workers int) error {
	ctx, cancel := context.WithTimeout(context.Background(), duration+10*time.Minute)
	defer cancel()
	agent, err := agentproc.Start(ctx, bin, workers)
	if err != nil {
		return err
	}
	defer agent.Stop()
	start := time.Now()
	if err := agentproc.Parallel(n, workers, func(i int) error {
		body := fmt.Sprintf(`{"ID":"c%d","Name":"c%d","TTL":"30s"}`, i, i)
		return agent.Put("/v1/agent/check/register", body)
	}); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	fmt.Printf("registered %d TTL checks in %v\n", n, time.Since(start).Round(time.Millisecond))
	// The first pass is a status change for every check: n writes.
	start = time.Now()
	if err := agentproc.Parallel(n, workers, func(i int) error {
		return agent.Put(fmt.Sprintf("/v1/agent/check/pass/c%d", i), "")
	}); err != nil {
		return fmt.Errorf("first pass: %w", err)
	}
	fmt.Printf("first pass (critical -> passing) of %d checks in %v\n", n, time.Since(start).Round(time.Millisecond))

	idxBefore, err := raftIndex(agent)
	if err != nil {
		return err
	}
	cpuBefore, err := agentproc.CPUSeconds(agent.Pid())
	if err != nil {
		return err
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		sent      atomic.Int64
	)
	begin := time.Now()
	for round := 0; time.Since(begin) < duration; round++ {
		roundStart := time.Now()
		err := agentproc.Parallel(n, workers, func(i int) error {
			t0 := time.Now()
			err := agent.Put(fmt.Sprintf("/v1/agent/check/pass/c%d", i), "")
			d := time.Since(t0)
			mu.Lock()
			latencies = append(latencies, d)
			mu.Unlock()
			sent.Add(1)
			return err
		})
		if err != nil {
			return fmt.Errorf("heartbeats: %w", err)
		}
		if rest := time.Second - time.Since(roundStart); rest > 0 {
			time.Sleep(rest) // pace: each check once a second
		}
	}
	wall := time.Since(begin)
	cpuAfter, err := agentproc.CPUSeconds(agent.Pid())
	if err != nil {
		return err
	}
	idxAfter, err := raftIndex(agent)
	if err != nil {
		return err
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	cpu := cpuAfter - cpuBefore
	fmt.Printf("heartbeats: %d in %v (%.0f/s), latency p50 %v p99 %v\n",
		sent.Load(), wall.Round(time.Millisecond), float64(sent.Load())/wall.Seconds(), pct(0.5), pct(0.99))
	fmt.Printf("agent CPU: %.2f s over %.1f s = %.1f%% of one core\n", cpu, wall.Seconds(), 100*cpu/wall.Seconds())
	fmt.Printf("raft last_log_index: %d before, %d after (%+d)\n", idxBefore, idxAfter, int64(idxAfter)-int64(idxBefore))
	if idxAfter != idxBefore {
		return errors.New("the Raft log grew while no status changed")
	}
	return nil
}

func raftIndex(agent *agentproc.Agent) (uint64, error) {
	b, err := agent.Get("/v1/agent/self")
	if err != nil {
		return 0, err
	}
	var self struct {
		Stats struct {
			Raft map[string]string `json:"raft"`
		}
	}
	if err := json.Unmarshal(b, &self); err != nil {
		return 0, err
	}
	return strconv.ParseUint(self.Stats.Raft["last_log_index"], 10, 64)
}
