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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func run(bin string, n int, duration time.Duration, workers int) error {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration+10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "agent", "-dev", "-log-level", "warn",
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[1]), "-server-port", strconv.Itoa(ports[2]))
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	if err := waitUp(client, base); err != nil {
		return err
	}

	start := time.Now()
	if err := parallel(n, workers, func(i int) error {
		body := fmt.Sprintf(`{"ID":"c%d","Name":"c%d","TTL":"30s"}`, i, i)
		return put(client, base+"/v1/agent/check/register", body)
	}); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	fmt.Printf("registered %d TTL checks in %v\n", n, time.Since(start).Round(time.Millisecond))
	// The first pass is a status change for every check: n writes.
	start = time.Now()
	if err := parallel(n, workers, func(i int) error {
		return put(client, fmt.Sprintf("%s/v1/agent/check/pass/c%d", base, i), "")
	}); err != nil {
		return fmt.Errorf("first pass: %w", err)
	}
	fmt.Printf("first pass (critical -> passing) of %d checks in %v\n", n, time.Since(start).Round(time.Millisecond))

	idxBefore, err := raftIndex(client, base)
	if err != nil {
		return err
	}
	cpuBefore, err := cpuSeconds(cmd.Process.Pid)
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
		err := parallel(n, workers, func(i int) error {
			t0 := time.Now()
			err := put(client, fmt.Sprintf("%s/v1/agent/check/pass/c%d", base, i), "")
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
	cpuAfter, err := cpuSeconds(cmd.Process.Pid)
	if err != nil {
		return err
	}
	idxAfter, err := raftIndex(client, base)
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

func waitUp(c *http.Client, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(base + "/v1/status/leader")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(bytes.Trim(b, "\"\n")) > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not up at %s: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func put(c *http.Client, url, body string) error {
	req, err := http.NewRequest("PUT", url, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("PUT %s: %d %s", url, resp.StatusCode, b)
	}
	return nil
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func raftIndex(c *http.Client, base string) (uint64, error) {
	resp, err := c.Get(base + "/v1/agent/self")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var self struct {
		Stats struct {
			Raft map[string]string `json:"raft"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&self); err != nil {
		return 0, err
	}
	return strconv.ParseUint(self.Stats.Raft["last_log_index"], 10, 64)
}

// cpuSeconds reads a process's user+system CPU time from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	const ticks = 100 // USER_HZ on Linux
	return (utime + stime) / ticks, nil
}
