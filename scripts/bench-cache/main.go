// Command bench-cache measures the agent cache on a real cluster on
// loopback: 3 servers and -clients client agents, each its own meshd
// process, with -services services of -instances-per instances
// registered through the catalog. Then:
//
//  1. every client reads every service once with ?cached, so each holds
//     one cache entry, and one watch on the servers, per service;
//
//  2. lookup latency on one client: cached (HTTP ?cached and DNS, from the
//     agent's memory) and uncached (HTTP default reads, an RPC to a
//     server, forwarded to the leader when that server does not lead);
//
//  3. the queries the servers see (meshd_rpc_requests_total for
//     Health.ServiceNodes, summed over the servers) while the cluster is
//     idle for -idle (by default 6 m, so that every watch's 5 m wait, plus
//     up to 1/16 of jitter, ends once in it), and while -churn-rate
//     services a second change, compared with the estimate: one query per
//     watched service per agent per watch wait (5 m plus 1/32 on average)
//     when idle, plus one per change per agent watching the changed
//     service.
//
//     make build && go run ./scripts/bench-cache
//
// Traffic goes to 127.0.0.1 only; every phase is bounded in count and
// time, and the whole run by -timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/meshd/meshd/scripts/internal/agentproc"
	"github.com/miekg/dns"
)

type options struct {
	bin               string
	clients           int
	services, perSvc  int
	lookups, uncached int
	idle, churn       time.Duration
	churnRate         int
	workers           int
	timeout           time.Duration
	watchWaitEstimate time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "meshd", "bin/meshd", "the meshd binary")
	flag.IntVar(&o.clients, "clients", 8, "client agents (each a process)")
	flag.IntVar(&o.services, "services", 1_000, "services, each watched by every client")
	flag.IntVar(&o.perSvc, "instances-per", 3, "instances of each service")
	flag.IntVar(&o.lookups, "lookups", 20_000, "cached lookups timed, HTTP and DNS each")
	flag.IntVar(&o.uncached, "uncached", 5_000, "uncached lookups timed")
	flag.DurationVar(&o.idle, "idle", 6*time.Minute, "idle window for the server query rate; past 5m20s every watch's wait ends in it (at most 10m)")
	flag.DurationVar(&o.churn, "churn", 30*time.Second, "churn window (at most 10m)")
	flag.IntVar(&o.churnRate, "churn-rate", 20, "services changed per second during the churn window")
	flag.IntVar(&o.workers, "workers", 32, "concurrent HTTP clients while loading")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "bound on the whole run")
	flag.Parse()
	o.watchWaitEstimate = 5*time.Minute + 5*time.Minute/32
	if o.idle > 10*time.Minute || o.churn > 10*time.Minute || o.clients < 1 || o.services < 1 || o.perSvc < 1 {
		fmt.Fprintln(os.Stderr, "bench-cache: -idle and -churn at most 10m; -clients, -services, -instances-per at least 1")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-cache:", err)
		os.Exit(1)
	}
}

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// register puts instance k of service svc on one of 100 external nodes,
// on port.
func register(a *agentproc.Agent, svc, k, port int) error {
	node := (svc*7 + k) % 100
	body := fmt.Sprintf(`{"Node":"ext-%03d","Address":"192.0.2.%d","Service":{"ID":"%s-%d","Service":"%s","Port":%d}}`,
		node, 1+node, svcName(svc), k, svcName(svc), port)
	return a.Put("/v1/catalog/register", body)
}

// serverQueries sums Health.ServiceNodes RPCs over the servers.
func serverQueries(c *agentproc.Cluster) (float64, error) {
	var sum float64
	for _, s := range c.Servers {
		v, err := s.Metric("meshd_rpc_requests_total", `method="Health.ServiceNodes"`)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// percentiles prints p50/p90/p99/p99.9/max of d.
func percentiles(what string, d []time.Duration) {
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	fmt.Printf("%-40s n=%-6d p50 %8.3f ms  p90 %8.3f ms  p99 %8.3f ms  p99.9 %8.3f ms  max %8.3f ms\n", what, len(d),
		ms(at(0.50)), ms(at(0.90)), ms(at(0.99)), ms(at(0.999)), ms(d[len(d)-1]))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// timeHTTP times n sequential GETs of path(i) on a.
func timeHTTP(a *agentproc.Agent, n int, path func(i int) string) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range n {
		t := time.Now()
		if _, err := a.Get(path(i)); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	return out, nil
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "bench-cache")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	c, err := agentproc.StartCluster(ctx, agentproc.ClusterSpec{Bin: o.bin, Dir: dir, Servers: 3, Clients: o.clients, Workers: o.workers})
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Printf("cluster: 3 servers, %d clients, up in %v\n", o.clients, time.Since(t0).Round(time.Millisecond))

	writer := c.Servers[0] // writes go to the leader through it
	t0 = time.Now()
	if err := agentproc.Parallel(o.services*o.perSvc, o.workers, func(i int) error {
		return register(writer, i%o.services, i/o.services, 20000+i/o.services)
	}); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	fmt.Printf("registered %d instances of %d services in %v\n", o.services*o.perSvc, o.services, time.Since(t0).Round(time.Millisecond))

	// 1. Every client watches every service.
	t0 = time.Now()
	for _, cl := range c.Clients {
		if err := agentproc.Parallel(o.services, o.workers, func(i int) error {
			_, err := cl.Get("/v1/health/service/" + svcName(i) + "?cached")
			return err
		}); err != nil {
			return fmt.Errorf("warm the caches: %w", err)
		}
	}
	fmt.Printf("%d clients x %d services cached (one watch each) in %v\n", o.clients, o.services, time.Since(t0).Round(time.Millisecond))

	// 2. Latency on client1.
	cl := c.Clients[0]
	qCached0, err := serverQueries(c)
	if err != nil {
		return err
	}
	random := func(int) string { return svcName(rand.N(o.services)) }
	d, err := timeHTTP(cl, o.lookups, func(i int) string { return "/v1/health/service/" + random(i) + "?cached" })
	if err != nil {
		return err
	}
	percentiles("cached, HTTP health/service ?cached", d)
	d, err = timeHTTP(cl, o.lookups, func(i int) string { return "/v1/health/service/" + random(i) + "?stale" })
	if err != nil {
		return err
	}
	percentiles("cached, HTTP health/service ?stale", d)
	dc := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	addr := "127.0.0.1:" + strconv.Itoa(cl.DNSPort)
	d = d[:0]
	for i := range o.lookups {
		m := new(dns.Msg)
		m.SetQuestion(random(i)+".service.consul.", dns.TypeA)
		r, rtt, err := dc.Exchange(m, addr)
		if err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		if len(r.Answer) != o.perSvc {
			return fmt.Errorf("dns %s: %d answers, want %d", m.Question[0].Name, len(r.Answer), o.perSvc)
		}
		d = append(d, rtt)
	}
	percentiles("cached, DNS A (UDP)", d)
	qCached1, err := serverQueries(c)
	if err != nil {
		return err
	}
	fmt.Printf("the %d cached lookups above sent %.0f health queries to the servers (watch renewals included)\n", 3*o.lookups, qCached1-qCached0)
	d, err = timeHTTP(cl, o.uncached, func(i int) string { return "/v1/health/service/" + random(i) })
	if err != nil {
		return err
	}
	percentiles("uncached, HTTP health/service (leader)", d)
	d, err = timeHTTP(cl, o.uncached, func(i int) string { return "/v1/health/service/" + random(i) + "?consistent" })
	if err != nil {
		return err
	}
	percentiles("uncached, HTTP ?consistent", d)

	// 3. What the servers see.
	watches := float64(o.clients * o.services)
	q0, err := serverQueries(c)
	if err != nil {
		return err
	}
	if !agentproc.SleepCtx(ctx, o.idle) {
		return ctx.Err()
	}
	q1, err := serverQueries(c)
	if err != nil {
		return err
	}
	idleRate := (q1 - q0) / o.idle.Seconds()
	idleEst := watches / o.watchWaitEstimate.Seconds()
	fmt.Printf("idle %v: %.0f health queries on the servers for %.0f watches (%.2f per watch), %.1f/s; steady-state estimate %.0f watches / %v = %.1f/s\n",
		o.idle, q1-q0, watches, (q1-q0)/watches, idleRate, watches, o.watchWaitEstimate.Round(time.Second), idleEst)
	changes := 0
	tick := time.NewTicker(time.Second / time.Duration(max(o.churnRate, 1)))
	defer tick.Stop()
	end := time.Now().Add(o.churn)
	for time.Now().Before(end) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		svc := rand.N(o.services)
		if err := register(writer, svc, 0, 30000+changes%10000); err != nil {
			return fmt.Errorf("churn: %w", err)
		}
		changes++
	}
	q2, err := serverQueries(c)
	if err != nil {
		return err
	}
	churnRate := (q2 - q1) / o.churn.Seconds()
	perChange := float64(changes) / o.churn.Seconds()
	churnEst := idleEst + perChange*float64(o.clients)
	fmt.Printf("churn %v, %d changes (%.1f/s): %.0f health queries, %.1f/s; estimate %.1f/s idle + %.1f changes/s x %d clients = %.1f/s\n",
		o.churn, changes, perChange, q2-q1, churnRate, idleEst, perChange, o.clients, churnEst)
	// A watch returns once per wait and once per change of its service.
	waits := float64(int(o.idle/(5*time.Minute)) + 1)
	if q1-q0 > 2*watches*waits || churnRate > 2*churnEst+1 {
		return errors.New("the servers saw far more queries than one per watch per change: the cache is not sharing its watches")
	}
	return nil
}
