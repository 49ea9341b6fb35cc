// Command jepsen runs checked histories against real meshd servers on
// loopback: clients write and read registers while the leader is killed,
// the leader is paused and a follower is restarted, and each history is
// checked for linearizability (scripts/internal/jepsen). It prints one
// line per run and exits 1 when any run fails.
//
//	go run ./scripts/jepsen -meshd bin/meshd -runs 20 -duration 2m
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshd/meshd/scripts/internal/jepsen"
)

func main() {
	bin := flag.String("meshd", "bin/meshd", "the meshd binary")
	runs := flag.Int("runs", 1, "runs, each on a fresh cluster")
	duration := flag.Duration("duration", 2*time.Minute, "length of each run")
	servers := flag.Int("servers", 3, "servers (3 or 5)")
	clients := flag.Int("clients", 6, "concurrent clients")
	keys := flag.Int("keys", 4, "registers")
	quiet := flag.Duration("quiet", 3*time.Second, "time between a fault healed and the next")
	down := flag.Duration("down", 1500*time.Millisecond, "a killed or paused server stays down [down, 2·down)")
	faults := flag.String("faults", "pause,kill,restart", "faults in turn: pause (leader SIGSTOP), kill (leader SIGKILL and restart), restart (follower)")
	limit := flag.Duration("check-limit", 5*time.Minute, "time limit of each porcupine check; running out fails the run")
	keep := flag.String("dir", "", "keep each run's data, logs and visualizations under this directory (default: a temporary one, removed when the run passes)")
	verbose := flag.Bool("v", false, "print each fault")
	flag.Parse()

	var fs []jepsen.Fault
	for _, name := range strings.Split(*faults, ",") {
		f, ok := map[string]jepsen.Fault{"pause": jepsen.PauseLeader, "kill": jepsen.KillLeader, "restart": jepsen.RestartFollower}[strings.TrimSpace(name)]
		if !ok {
			fmt.Fprintf(os.Stderr, "jepsen: unknown fault %q\n", name)
			os.Exit(2)
		}
		fs = append(fs, f)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	failed := 0
	for i := range *runs {
		dir := *keep
		if dir == "" {
			d, err := os.MkdirTemp("", "meshd-jepsen-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			dir = d
		} else {
			dir = filepath.Join(dir, fmt.Sprintf("run%02d", i+1))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
		logf := func(string, ...any) {}
		if *verbose {
			logf = func(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) }
		}
		rctx, cancel := context.WithTimeout(ctx, *duration+10*time.Minute)
		start := time.Now()
		rep, err := jepsen.RunChecked(rctx, jepsen.Spec{
			Bin: *bin, Dir: dir, Servers: *servers, Duration: *duration,
			Workload:   jepsen.Workload{Clients: *clients, Keys: *keys, OpTimeout: 5 * time.Second, Pace: 5 * time.Millisecond},
			Nemesis:    jepsen.Nemesis{Faults: fs, Quiet: *quiet, Down: *down},
			CheckLimit: *limit, Logf: logf,
		})
		cancel()
		took := time.Since(start).Round(time.Second)
		switch {
		case err != nil:
			failed++
			fmt.Printf("run %d: FAILED after %v: %v (data in %s)\n", i+1, took, err, dir)
		case !rep.Ok():
			failed++
			fmt.Printf("run %d: FAILED after %v: %s (data in %s)\n", i+1, took, rep, dir)
		default:
			fmt.Printf("run %d: ok in %v: %s; caught up in %v\n", i+1, took, rep, rep.CaughtUp.Round(time.Millisecond))
			if *keep == "" {
				os.RemoveAll(dir)
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Printf("%d runs, %d failed\n", *runs, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
