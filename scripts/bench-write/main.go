// Command bench-write measures the write path: a 3-server cluster of real
// meshd processes on loopback (data on disk), -writes catalog
// registrations from -workers concurrent clients, each through a random
// server (so two in three are forwarded to the leader), and prints the
// registrations a second and the latency percentiles.
//
// With several -meshd binaries (comma-separated) it runs them in turn,
// -rounds times, a fresh cluster each run, so a before/after comparison
// is interleaved on a noisy machine, and prints each binary's median and
// range over its runs.
//
//	go run ./scripts/bench-write -meshd /tmp/meshd-before,bin/meshd -rounds 5
//
// Traffic goes to 127.0.0.1 only; every run is bounded by -writes and by
// -timeout.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/scripts/internal/agentproc"
)

type result struct {
	rate          float64 // registrations a second
	p50, p99, max time.Duration
}

func main() {
	bins := flag.String("meshd", "bin/meshd", "meshd binaries, comma-separated, run in turn")
	rounds := flag.Int("rounds", 1, "runs of each binary, interleaved")
	writes := flag.Int("writes", 20000, "registrations per run")
	workers := flag.Int("workers", 32, "concurrent clients")
	services := flag.Int("services", 1000, "distinct services the registrations spread over")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound of the whole benchmark")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	list := strings.Split(*bins, ",")
	all := map[string][]result{}
	for r := range *rounds {
		for _, bin := range list {
			res, err := runOnce(ctx, bin, *writes, *workers, *services)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench-write: %s: %v\n", bin, err)
				os.Exit(1)
			}
			all[bin] = append(all[bin], res)
			fmt.Printf("round %d  %-28s %7.0f reg/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms\n",
				r+1, bin, res.rate, ms(res.p50), ms(res.p99), ms(res.max))
		}
	}
	fmt.Println()
	for _, bin := range list {
		rs := all[bin]
		fmt.Printf("%-28s reg/s %s   p50 %s ms   p99 %s ms   (%d runs: median [min-max])\n", bin,
			summary(rs, func(r result) float64 { return r.rate }, "%.0f"),
			summary(rs, func(r result) float64 { return ms(r.p50) }, "%.2f"),
			summary(rs, func(r result) float64 { return ms(r.p99) }, "%.2f"), len(rs))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summary(rs []result, f func(result) float64, format string) string {
	var v []float64
	for _, r := range rs {
		v = append(v, f(r))
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return fmt.Sprintf(format+" ["+format+"-"+format+"]", med, v[0], v[len(v)-1])
}

func runOnce(ctx context.Context, bin string, writes, workers, services int) (result, error) {
	dir, err := os.MkdirTemp("", "meshd-bench-write-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	c, err := agentproc.StartCluster(ctx, agentproc.ClusterSpec{Bin: bin, Dir: dir, Servers: 3, Workers: workers, LogDir: dir})
	if err != nil {
		return result{}, err
	}
	defer c.Stop()
	// Every server must know the leader and take a write before timing.
	for _, s := range c.Servers {
		if err := s.Put("/v1/catalog/register", `{"Node":"warm","Address":"10.0.0.1"}`); err != nil {
			return result{}, err
		}
	}
	lat := make([]time.Duration, writes)
	var mu sync.Mutex
	start := time.Now()
	err = agentproc.Parallel(writes, workers, func(i int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s := c.Servers[rand.N(len(c.Servers))]
		body := fmt.Sprintf(`{"Node":"host-%d","Address":"10.%d.%d.%d","Service":{"ID":"svc-%d","Service":"svc-%d","Port":%d,"Tags":["v1"]},"Check":{"CheckID":"c-%d","ServiceID":"svc-%d","Status":"passing"}}`,
			i%(writes/10+1), i>>16&255, i>>8&255, i&255, i, i%services, 1024+i%50000, i, i)
		t0 := time.Now()
		err := s.Put("/v1/catalog/register", body)
		d := time.Since(t0)
		mu.Lock()
		lat[i] = d
		mu.Unlock()
		return err
	})
	took := time.Since(start)
	if err != nil {
		return result{}, err
	}
	slices.Sort(lat)
	return result{
		rate: float64(writes) / took.Seconds(),
		p50:  lat[len(lat)/2], p99: lat[len(lat)*99/100], max: lat[len(lat)-1],
	}, nil
}
