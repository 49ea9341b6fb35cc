// Command bench-scale measures meshd at the mission's size on one machine:
// real meshd processes on loopback, a 3-server cluster and client agents,
// each with its data dir on disk, and prints one table:
//
//   - registration: -instances instances of -services services, most
//     through /v1/catalog/register and -via-agents through the client
//     agents' /v1/agent/service/register (synced to the servers by
//     anti-entropy); instances/s, and the entries per Raft log write the
//     leader achieved (meshd_raft_log_write_entries);
//
//   - memory: each server's RSS and Go heap with the full catalog;
//
//   - snapshot: its size and the time to take it (GET /v1/snapshot), and
//     the time for a server to restart and serve the full catalog, after a
//     graceful stop and after a kill;
//
//   - heartbeats: -heartbeats TTL checks spread over the client agents,
//     each passed once a second for -heartbeat-duration; latency, CPU per
//     agent, and the Raft writes they caused (must be zero: no status
//     changes);
//
//   - lookups on one client agent with the full catalog: DNS and HTTP,
//     cached (the agent's cache) and uncached (an RPC to a server per
//     lookup), one at a time (latency) and from -lookup-workers at once
//     (throughput);
//
//   - watchers: -watchers blocking queries on one server, all on one
//     service; the time from a change to the last watcher's return, and
//     the server's CPU;
//
//   - gossip: -gossip-agents more client agents join (at least 100); one
//     is killed and the time until every other agent knows it failed is
//     compared with the SWIM model of gossip/README.md.
//
//     make bench-scale    # = go run ./scripts/bench-scale -meshd bin/meshd
//
// With -profile-dir, CPU profiles of the busiest process in each phase are
// written there (the agents run with -enable-debug). Traffic goes to
// 127.0.0.1 only; every phase is bounded in count and time, the whole run
// by -timeout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/scripts/internal/agentproc"
	"github.com/miekg/dns"
)

type options struct {
	bin                  string
	clients              int
	services, instances  int
	viaAgents, nodes     int
	heartbeats           int
	heartbeatDur         time.Duration
	latencyDur, loadDur  time.Duration
	lookupWorkers        int
	watchers, watchRound int
	gossipAgents         int
	workers              int
	timeout              time.Duration
	profileDir           string
	serverEnv            string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "meshd", "bin/meshd", "the meshd binary")
	flag.IntVar(&o.clients, "clients", 4, "client agents the services, heartbeats and lookups go through")
	flag.IntVar(&o.services, "services", 10_000, "services")
	flag.IntVar(&o.instances, "instances", 100_000, "instances, spread evenly over the services")
	flag.IntVar(&o.viaAgents, "via-agents", 20_000, "of the instances, those registered through the client agents (the rest through catalog/register)")
	flag.IntVar(&o.nodes, "nodes", 1_000, "external nodes the catalog/register instances run on")
	flag.IntVar(&o.heartbeats, "heartbeats", 10_000, "TTL checks, each passed once a second")
	flag.DurationVar(&o.heartbeatDur, "heartbeat-duration", 20*time.Second, "heartbeat window (at most 2m)")
	flag.DurationVar(&o.latencyDur, "latency-duration", 2*time.Second, "length of each one-at-a-time lookup run (at most 1m)")
	flag.DurationVar(&o.loadDur, "load-duration", 4*time.Second, "length of each throughput lookup run (at most 1m)")
	flag.IntVar(&o.lookupWorkers, "lookup-workers", 16, "concurrent lookups in the throughput runs")
	flag.IntVar(&o.watchers, "watchers", 10_000, "blocking queries held on one server (at most 15,000)")
	flag.IntVar(&o.watchRound, "watch-rounds", 3, "changes the watchers see, one at a time")
	flag.IntVar(&o.gossipAgents, "gossip-agents", 100, "client agents added for the gossip phase; 0 skips it")
	flag.IntVar(&o.workers, "workers", 64, "concurrent HTTP clients while loading")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on the whole run")
	flag.StringVar(&o.profileDir, "profile-dir", "", "write CPU profiles of each phase's busiest process here")
	flag.StringVar(&o.serverEnv, "server-env", "", "extra environment for the servers, space-separated (e.g. GOGC=50)")
	flag.Parse()
	switch {
	case o.heartbeatDur > 2*time.Minute || o.latencyDur > time.Minute || o.loadDur > time.Minute:
		fail(errors.New("-heartbeat-duration at most 2m, -latency-duration and -load-duration at most 1m"))
	case o.clients < 1 || o.services < 1 || o.instances < o.services || o.viaAgents < 0 || o.viaAgents > o.instances || o.nodes < 1:
		fail(errors.New("need -clients ≥ 1, -services ≥ 1, -instances ≥ -services, 0 ≤ -via-agents ≤ -instances, -nodes ≥ 1"))
	case o.heartbeats > o.viaAgents/o.clients*o.clients:
		fail(errors.New("-heartbeats at most the services registered through the agents (-via-agents, rounded down to a multiple of -clients)"))
	case o.watchers < 1 || o.watchers > 15_000 || o.watchRound < 1 || o.lookupWorkers < 1:
		fail(errors.New("need 1 ≤ -watchers ≤ 15000, -watch-rounds ≥ 1, -lookup-workers ≥ 1"))
	}
	start := time.Now()
	if err := run(o); err != nil {
		fail(err)
	}
	fmt.Printf("\nbench-scale done in %v\n", time.Since(start).Round(time.Second))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-scale:", err)
	os.Exit(1)
}

// table collects the figures; each is printed as it comes and all again
// at the end.
type table struct{ rows [][3]string }

func (t *table) add(phase, figure, format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	t.rows = append(t.rows, [3]string{phase, figure, v})
	fmt.Printf("  %-12s %-58s %s\n", phase, figure, v)
}

func (t *table) print() {
	fmt.Println("\n| phase | figure | value |\n| --- | --- | --- |")
	for _, r := range t.rows {
		fmt.Printf("| %s | %s | %s |\n", r[0], r[1], r[2])
	}
}

type bench struct {
	o       options
	ctx     context.Context
	dir     string
	c       *agentproc.Cluster
	nocache *agentproc.Agent // a client agent whose DNS does not use the cache
	t       table
	// expected sizes once registered
	instances int
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "bench-scale")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	b := &bench{o: o, ctx: ctx, dir: dir}
	t0 := time.Now()
	b.c, err = agentproc.StartCluster(ctx, agentproc.ClusterSpec{Bin: o.bin, Dir: dir, Servers: 3, Clients: o.clients, Workers: o.workers,
		ServerArgs: []string{"-enable-debug", "-log-level", "error"}, ClientArgs: []string{"-enable-debug", "-log-level", "error"},
		ServerEnv: strings.Fields(o.serverEnv)})
	if err != nil {
		return err
	}
	defer b.c.Stop()
	nocacheCfg := filepath.Join(dir, "nocache.hcl")
	if err := os.WriteFile(nocacheCfg, []byte("dns_config {\n  allow_stale = false\n}\n"), 0o600); err != nil {
		return err
	}
	added, err := b.c.AddClients(1, "nocache", []string{"-config-file", nocacheCfg})
	if err != nil {
		return err
	}
	b.nocache = added[0]
	fmt.Printf("cluster: 3 servers, %d client agents and 1 without a DNS cache, up in %v\n", o.clients, time.Since(t0).Round(time.Millisecond))

	term := func() string {
		st, err := raftStats(b.c.Servers[0])
		if err != nil {
			return "?"
		}
		return st["term"]
	}
	terms := []string{term()}
	for i, phase := range []func() error{b.register, b.memory, b.snapshot, b.heartbeat, b.lookups, b.watch, b.gossip} {
		if err := phase(); err != nil {
			b.t.print()
			return err
		}
		terms = append(terms, fmt.Sprintf("%s %s", []string{"register", "memory", "snapshot", "heartbeats", "lookups", "watchers", "gossip"}[i], term()))
	}
	b.t.add("raft", "term at the start, then after each phase (each election adds one)", "%s", strings.Join(terms, ", "))
	b.t.print()
	return nil
}

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// agentServiceID is the ID of the i-th service registered through the
// agents, on agent i % o.clients.
func agentServiceID(o options, i int) string {
	return fmt.Sprintf("%s-a%d", svcName((o.instances-o.viaAgents+i)%o.services), i)
}

// leader is the server that leads now.
func (b *bench) leader() (*agentproc.Agent, error) {
	for _, s := range b.c.Servers {
		st, err := raftStats(s)
		if err != nil {
			return nil, err
		}
		if st["state"] == "Leader" {
			return s, nil
		}
	}
	return nil, errors.New("no server leads")
}

// follower is a server that does not lead now.
func (b *bench) follower() (*agentproc.Agent, error) {
	l, err := b.leader()
	if err != nil {
		return nil, err
	}
	for _, s := range b.c.Servers {
		if s != l {
			return s, nil
		}
	}
	return nil, errors.New("no follower")
}

func raftStats(a *agentproc.Agent) (map[string]string, error) {
	body, err := a.Get("/v1/agent/self")
	if err != nil {
		return nil, err
	}
	var self struct {
		Stats struct {
			Raft map[string]string `json:"raft"`
		}
	}
	if err := json.Unmarshal(body, &self); err != nil {
		return nil, err
	}
	return self.Stats.Raft, nil
}

func raftIndex(a *agentproc.Agent) (uint64, error) {
	st, err := raftStats(a)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(st["last_log_index"], 10, 64)
}

// logWrites is the leader's Raft log writes and the entries they held.
func logWrites(a *agentproc.Agent) (writes, entries float64, err error) {
	m, err := a.Scrape()
	if err != nil {
		return 0, 0, err
	}
	if writes, err = m.Sum("meshd_raft_log_write_entries_count"); err != nil {
		return 0, 0, err
	}
	entries, err = m.Sum("meshd_raft_log_write_entries_sum")
	return writes, entries, err
}

// waitMetric polls a's metric until ok says yes, up to timeout. It polls
// every 250 ms: a scrape of a server walks its whole catalog (38 ms at
// 100,000 instances, catalog BenchmarkStats), and polling faster would
// load the server whose progress is being timed.
func (b *bench) waitMetric(a *agentproc.Agent, timeout time.Duration, name string, ok func(float64) bool, match ...string) (float64, error) {
	deadline := time.Now().Add(timeout)
	for {
		v, err := a.Metric(name, match...)
		if err == nil && ok(v) {
			return v, nil
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("%s on %s: %v after %v (%v)", name, a.Name, v, timeout, err)
		}
		if !agentproc.SleepCtx(b.ctx, 250*time.Millisecond) {
			return v, b.ctx.Err()
		}
	}
}

// profile fetches a CPU profile of a for d into the profile dir, in the
// background; wait for it with the returned func.
func (b *bench) profile(a *agentproc.Agent, d time.Duration, name string) (wait func()) {
	if b.o.profileDir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(1, int(d.Round(time.Second)/time.Second))
		body, err := a.GetTimeout("/debug/pprof/profile?seconds="+strconv.Itoa(secs), d+30*time.Second)
		if err == nil {
			err = os.WriteFile(filepath.Join(b.o.profileDir, name+".pprof"), body, 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "profile %s: %v\n", name, err)
		}
	}()
	return func() { <-done }
}

// heapProfile writes a's live heap (after a collection) into the profile
// dir, when there is one.
func (b *bench) heapProfile(a *agentproc.Agent, name string) error {
	if b.o.profileDir == "" {
		return nil
	}
	body, err := a.Get("/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("heap profile of %s: %w", a.Name, err)
	}
	return os.WriteFile(filepath.Join(b.o.profileDir, name+".pprof"), body, 0o644)
}

// register loads the catalog: catalog/register through the client agents,
// then agent registrations on each client agent.
func (b *bench) register() error {
	o := b.o
	leader, err := b.leader()
	if err != nil {
		return err
	}
	base, err := leader.Metric("meshd_catalog_service_instances")
	if err != nil {
		return err
	}
	viaCatalog := o.instances - o.viaAgents
	cl := b.c.Clients[:o.clients]
	w0, e0, err := logWrites(leader)
	if err != nil {
		return err
	}
	waitLeader := b.profile(leader, 8*time.Second, "register-catalog-leader")
	waitClient := b.profile(cl[0], 8*time.Second, "register-catalog-client1")
	wait := func() { waitLeader(); waitClient() }
	procs := append(slices.Clone(b.c.Servers), b.c.Clients...)
	cpu0, err := cpus(procs)
	if err != nil {
		return err
	}
	self0, err := agentproc.CPUSeconds(os.Getpid())
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := agentproc.Parallel(viaCatalog, o.workers, func(i int) error {
		// A service's instances on distinct nodes, so DNS has as many
		// addresses to give.
		svc, k := i%o.services, i/o.services
		node := (svc + k*max(1, o.nodes/(o.instances/o.services))) % o.nodes
		body := fmt.Sprintf(`{"Node":"ext-%04d","Address":"10.1.%d.%d","Service":{"ID":"%s-%d","Service":"%s","Port":%d,"Tags":["v%d"],"Meta":{"k":"%d"}}}`,
			node, node/250, 1+node%250, svcName(svc), k, svcName(svc), 20000+k, k%3, k)
		return cl[i%len(cl)].Put("/v1/catalog/register", body)
	}); err != nil {
		return fmt.Errorf("catalog/register: %w", err)
	}
	took := time.Since(t0)
	cpu1, err := cpus(procs)
	if err != nil {
		return err
	}
	self1, err := agentproc.CPUSeconds(os.Getpid())
	if err != nil {
		return err
	}
	wait()
	w1, e1, err := logWrites(leader)
	if err != nil {
		return err
	}
	b.t.add("register", fmt.Sprintf("catalog/register, %d instances, %d at once, via the clients", viaCatalog, o.workers),
		"%v: **%.0f instances/s**", took.Round(time.Millisecond), float64(viaCatalog)/took.Seconds())
	b.t.add("register", "leader's Raft log writes (one fsync each)", "%.0f writes for %.0f entries: **%.1f entries per write**",
		w1-w0, e1-e0, (e1-e0)/max(w1-w0, 1))
	var servers, clients float64
	for i := range procs {
		if i < len(b.c.Servers) {
			servers += cpu1[i] - cpu0[i]
		} else {
			clients += cpu1[i] - cpu0[i]
		}
	}
	b.t.add("register", "CPU used meanwhile, in cores (the machine has 2)", "servers %.2f, client agents %.2f, load generator %.2f; %.0f µs of meshd CPU per instance",
		servers/took.Seconds(), clients/took.Seconds(), (self1-self0)/took.Seconds(), 1e6*(servers+clients)/float64(viaCatalog))

	// Agent registrations: local at once, then synced by anti-entropy.
	per := o.viaAgents / len(cl)
	total := per * len(cl)
	w0, e0 = w1, e1
	wait = b.profile(b.c.Clients[0], 5*time.Second, "register-agent-client1")
	t0 = time.Now()
	if err := agentproc.Parallel(total, o.workers, func(i int) error {
		svc := (viaCatalog + i) % o.services
		body := fmt.Sprintf(`{"ID":"%s","Name":"%s","Port":%d,"Tags":["agent"]}`, agentServiceID(o, i), svcName(svc), 30000+i%1000)
		return cl[i%len(cl)].Put("/v1/agent/service/register", body)
	}); err != nil {
		return fmt.Errorf("agent/service/register: %w", err)
	}
	local := time.Since(t0)
	want := base + float64(viaCatalog+total)
	if _, err := b.waitMetric(leader, 5*time.Minute, "meshd_catalog_service_instances", func(v float64) bool { return v >= want }); err != nil {
		return err
	}
	took = time.Since(t0)
	wait()
	w1, e1, err = logWrites(leader)
	if err != nil {
		return err
	}
	b.t.add("register", fmt.Sprintf("agent/service/register, %d services on %d agents", total, len(cl)),
		"accepted locally in %v; all in the catalog after %v: **%.0f instances/s**", local.Round(time.Millisecond), took.Round(time.Millisecond), float64(total)/took.Seconds())
	b.t.add("register", "leader's Raft log writes during the agent sync", "%.0f writes for %.0f entries: %.1f entries per write",
		w1-w0, e1-e0, (e1-e0)/max(w1-w0, 1))
	b.instances = int(want)
	m, err := leader.Scrape()
	if err != nil {
		return err
	}
	svcs, err := m.Sum("meshd_catalog_services")
	if err != nil {
		return err
	}
	nodes, err := m.Sum("meshd_catalog_nodes")
	if err != nil {
		return err
	}
	b.t.add("register", "catalog", "%d instances of %.0f services on %.0f nodes", b.instances, svcs, nodes)
	return nil
}

// memory reads each server's RSS and Go heap.
func (b *bench) memory() error {
	for _, s := range b.c.Servers {
		rss, err := agentproc.RSS(s.Pid())
		if err != nil {
			return err
		}
		heap, err := s.Metric("go_memstats_heap_inuse_bytes")
		if err != nil {
			return err
		}
		b.t.add("memory", s.Name+" with the full catalog (budget 300 MB)", "RSS **%.0f MB**, Go heap in use %.0f MB", mb(rss), heap/1e6)
	}
	return b.heapProfile(b.c.Servers[0], "memory-heap-"+b.c.Servers[0].Name)
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// snapshot takes a snapshot through the API, then restarts a follower
// after a graceful stop and after a kill.
func (b *bench) snapshot() error {
	leader, err := b.leader()
	if err != nil {
		return err
	}
	t0 := time.Now()
	resp, err := leader.Client.Get(leader.HTTP + "/v1/snapshot")
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("snapshot: %d, %v", resp.StatusCode, err)
	}
	took := time.Since(t0)
	state := newestState(filepath.Join(b.dir, leader.Name))
	b.t.add("snapshot", "GET /v1/snapshot on the leader (take, archive, gzip)", "%v, archive %.1f MB, state on disk %.1f MB",
		took.Round(time.Millisecond), mb(n), mb(state))

	f, err := b.follower()
	if err != nil {
		return err
	}
	for _, how := range []string{"graceful stop", "kill -9"} {
		target, err := raftIndex(leader)
		if err != nil {
			return err
		}
		if how == "kill -9" {
			f.Kill()
		} else {
			f.Stop()
		}
		t0 := time.Now()
		if err := f.Restart(b.ctx); err != nil {
			return err
		}
		// Serving: its FSM holds the whole log (reads open then) and it
		// answers one from its own state. Polled on /v1/agent/self, which
		// costs the restarting server nothing.
		if err := b.waitApplied(f, target, 2*time.Minute); err != nil {
			return err
		}
		if _, err := f.Get("/v1/health/service/" + svcName(0) + "?stale"); err != nil {
			return err
		}
		took := time.Since(t0)
		if n, err := f.Metric("meshd_catalog_service_instances"); err != nil || int(n) < b.instances {
			return fmt.Errorf("%s restarted with %v instances, want %d (%v)", f.Name, n, b.instances, err)
		}
		b.t.add("snapshot", "a follower restarted after a "+how+": serving the full catalog", "**%v**", took.Round(time.Millisecond))
	}
	return nil
}

// waitApplied polls a's Raft applied index every 20 ms until it reaches
// index, up to timeout; a restarting agent refuses connections at first.
func (b *bench) waitApplied(a *agentproc.Agent, index uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := raftStats(a)
		if err == nil {
			if v, perr := strconv.ParseUint(st["applied_index"], 10, 64); perr == nil && v >= index {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never applied index %d: %v, %v", a.Name, index, st["applied_index"], err)
		}
		if !agentproc.SleepCtx(b.ctx, 20*time.Millisecond) {
			return b.ctx.Err()
		}
	}
}

// newestState is the size of the newest Raft snapshot under dir.
func newestState(dir string) int64 {
	var newest time.Time
	var size int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "state.bin" {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().After(newest) {
			newest, size = fi.ModTime(), fi.Size()
		}
		return nil
	})
	return size
}

// heartbeat passes TTL checks spread over the client agents.
func (b *bench) heartbeat() error {
	o := b.o
	leader, err := b.leader()
	if err != nil {
		return err
	}
	cl := b.c.Clients[:o.clients]
	base, err := leader.Metric("meshd_catalog_checks", `status="passing"`)
	if err != nil {
		return err
	}
	// Each on one of the services the agents registered, as a service's
	// heartbeat (register put service i on agent i%len(cl)). The TTL
	// outlasts the run, so that no check expires in a later phase.
	if err := agentproc.Parallel(o.heartbeats, o.workers, func(i int) error {
		body := fmt.Sprintf(`{"ID":"hb-%d","Name":"heartbeat","TTL":"15m","Status":"passing","ServiceID":"%s"}`, i, agentServiceID(o, i))
		return cl[i%len(cl)].Put("/v1/agent/check/register", body)
	}); err != nil {
		return fmt.Errorf("register TTL checks: %w", err)
	}
	want := base + float64(o.heartbeats)
	if _, err := b.waitMetric(leader, 3*time.Minute, "meshd_catalog_checks", func(v float64) bool { return v >= want }, `status="passing"`); err != nil {
		return err
	}
	// Let the sync that carried them finish before counting writes.
	if !agentproc.SleepCtx(b.ctx, time.Second) {
		return b.ctx.Err()
	}
	idx0, err := raftIndex(leader)
	if err != nil {
		return err
	}
	procs := append(slices.Clone(cl), b.c.Servers...)
	cpu0, err := cpus(procs)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		lat  []time.Duration
		sent atomic.Int64
	)
	wait := b.profile(cl[0], o.heartbeatDur/2, "heartbeat-client1")
	begin := time.Now()
	for time.Since(begin) < o.heartbeatDur {
		round := time.Now()
		if err := agentproc.Parallel(o.heartbeats, o.workers, func(i int) error {
			t := time.Now()
			err := cl[i%len(cl)].Put(fmt.Sprintf("/v1/agent/check/pass/hb-%d", i), "")
			d := time.Since(t)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			sent.Add(1)
			return err
		}); err != nil {
			return fmt.Errorf("heartbeats: %w", err)
		}
		if rest := time.Second - time.Since(round); rest > 0 && !agentproc.SleepCtx(b.ctx, rest) {
			return b.ctx.Err()
		}
	}
	wall := time.Since(begin)
	wait()
	cpu1, err := cpus(procs)
	if err != nil {
		return err
	}
	idx1, err := raftIndex(leader)
	if err != nil {
		return err
	}
	p := pct(lat)
	b.t.add("heartbeats", fmt.Sprintf("%d TTL checks of services on %d agents, each passed once a second", o.heartbeats, len(cl)),
		"%d passes in %v: **%.0f/s**; latency p50 %s, p99 %s", sent.Load(), wall.Round(time.Millisecond), float64(sent.Load())/wall.Seconds(), p(0.5), p(0.99))
	var agentCPU []float64
	for i := range cl {
		agentCPU = append(agentCPU, 100*(cpu1[i]-cpu0[i])/wall.Seconds())
	}
	var serverCPU []string
	for i := range b.c.Servers {
		j := len(cl) + i
		serverCPU = append(serverCPU, fmt.Sprintf("%.1f%%", 100*(cpu1[j]-cpu0[j])/wall.Seconds()))
	}
	b.t.add("heartbeats", "CPU per agent (% of one core)", "**%.1f%%** mean, %.1f%% max (%.0f passes/s each); servers %s",
		mean(agentCPU), slices.Max(agentCPU), float64(sent.Load())/wall.Seconds()/float64(len(cl)), strings.Join(serverCPU, ", "))
	b.t.add("heartbeats", "Raft writes caused (nothing changed)", "**%d** (log index %d → %d)", int64(idx1)-int64(idx0), idx0, idx1)
	if idx1 != idx0 {
		return errors.New("heartbeats that change nothing wrote to Raft")
	}
	return nil
}

func cpus(as []*agentproc.Agent) ([]float64, error) {
	out := make([]float64, len(as))
	for i, a := range as {
		v, err := agentproc.CPUSeconds(a.Pid())
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// pct sorts d and returns its quantile function, formatted in ms.
func pct(d []time.Duration) func(q float64) string {
	slices.Sort(d)
	return func(q float64) string {
		if len(d) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f ms", float64(d[min(len(d)-1, int(q*float64(len(d))))])/1e6)
	}
}

// lookups times DNS and HTTP lookups on one client agent, cached and
// uncached.
func (b *bench) lookups() error {
	o := b.o
	cl := b.c.Clients[0]
	// Warm client1's cache: every service once, over DNS and HTTP. Each
	// entry is one blocking RPC the servers hold from then on.
	mem0, held0, err := b.serverWatchMemory()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := agentproc.Parallel(o.services, o.workers, func(i int) error {
		if _, err := dnsA(cl.DNSPort, svcName(i)); err != nil {
			return err
		}
		_, err := cl.Get("/v1/health/service/" + svcName(i) + "?cached")
		return err
	}); err != nil {
		return fmt.Errorf("warm the cache: %w", err)
	}
	b.t.add("lookups", fmt.Sprintf("client1's cache warmed: %d services over DNS and HTTP", o.services), "%v", time.Since(t0).Round(time.Millisecond))
	mem1, held1, err := b.serverWatchMemory()
	if err != nil {
		return err
	}
	if held1 > held0 {
		b.t.add("lookups", "the servers' blocking RPCs for client1's cache (its watches)", "%.0f more held; servers' heap + stacks %+.0f MB: %.1f KB per watch",
			held1-held0, (mem1-mem0)/1e6, (mem1-mem0)/1e3/(held1-held0))
	}
	// The catalog's instances of a service have distinct addresses; the
	// agents' share one (127.0.0.1).
	wantA := (o.instances - o.viaAgents) / o.services
	random := func() string { return svcName(rand.N(o.services)) }
	kinds := []struct {
		name, profile string
		agent         *agentproc.Agent
		dns           bool
		path          string
	}{
		{"DNS A, cached (client1)", "lookup-dns-cached-client1", cl, true, ""},
		{"DNS A, uncached (allow_stale = false: an RPC each)", "lookup-dns-uncached-nocache1", b.nocache, true, ""},
		{"HTTP health/service?cached", "lookup-http-cached-client1", cl, false, "?cached"},
		{"HTTP health/service, uncached (to the leader)", "lookup-http-uncached-client1", cl, false, ""},
	}
	for _, k := range kinds {
		var conns []*dnsConn
		lookup := func(w int) error {
			if k.dns {
				n, err := conns[w].a(random())
				if err == nil && n < wantA {
					err = fmt.Errorf("DNS A: %d answers, want at least %d", n, wantA)
				}
				return err
			}
			_, err := k.agent.Get("/v1/health/service/" + random() + k.path)
			return err
		}
		for range o.lookupWorkers {
			if k.dns {
				c, err := dialDNS(k.agent.DNSPort)
				if err != nil {
					return err
				}
				defer c.Close()
				conns = append(conns, c)
			}
		}
		lat, _, err := b.load(1, o.latencyDur, lookup)
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		p := pct(lat)
		b.t.add("lookups", k.name+", one at a time", "n=%d: p50 **%s**, p99 **%s**, p99.9 %s, max %s", len(lat), p(0.5), p(0.99), p(0.999), p(1))
		wait := b.profile(k.agent, o.loadDur, k.profile)
		lat, wall, err := b.load(o.lookupWorkers, o.loadDur, lookup)
		wait()
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		p = pct(lat)
		b.t.add("lookups", fmt.Sprintf("%s, %d at once", k.name, o.lookupWorkers), "**%.0f/s**: p50 %s, p99 %s, p99.9 %s",
			float64(len(lat))/wall.Seconds(), p(0.5), p(0.99), p(0.999))
	}
	return nil
}

// serverWatchMemory sums the servers' Go heap and stacks in use, after a
// collection, and the blocking queries they hold.
func (b *bench) serverWatchMemory() (mem, held float64, err error) {
	for _, s := range b.c.Servers {
		// A heap profile with gc=1 collects first, so the figures are live.
		if _, err := s.Get("/debug/pprof/heap?gc=1"); err != nil {
			return 0, 0, err
		}
		m, err := s.Scrape()
		if err != nil {
			return 0, 0, err
		}
		for _, name := range []string{"go_memstats_heap_alloc_bytes", "go_memstats_stack_inuse_bytes"} {
			v, err := m.Sum(name)
			if err != nil {
				return 0, 0, err
			}
			mem += v
		}
		v, err := m.Sum("meshd_rpc_client_blocking_queries")
		if err != nil {
			return 0, 0, err
		}
		held += v
	}
	return mem, held, nil
}

// load runs f on workers goroutines for d and returns every call's
// latency and the time taken.
func (b *bench) load(workers int, d time.Duration, f func(worker int) error) ([]time.Duration, time.Duration, error) {
	var (
		mu    sync.Mutex
		all   []time.Duration
		first error
		wg    sync.WaitGroup
	)
	begin := time.Now()
	end := begin.Add(d)
	for w := range workers {
		wg.Go(func() {
			var lat []time.Duration
			for time.Now().Before(end) && b.ctx.Err() == nil {
				t := time.Now()
				if err := f(w); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, time.Since(begin), first
}

// dnsConn is one UDP socket to an agent's DNS port.
type dnsConn struct {
	*dns.Conn
	id uint16
}

func dialDNS(port int) (*dnsConn, error) {
	c, err := (&dns.Client{Net: "udp"}).Dial("127.0.0.1:" + strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	return &dnsConn{Conn: c}, nil
}

// a asks for name's A records and returns how many came back.
func (c *dnsConn) a(name string) (int, error) {
	c.id++
	m := new(dns.Msg)
	m.SetQuestion(name+".service.consul.", dns.TypeA)
	m.Id = c.id
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if err := c.WriteMsg(m); err != nil {
		return 0, err
	}
	for {
		r, err := c.ReadMsg()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		if r.Id != m.Id {
			continue // a late answer to an earlier question
		}
		if r.Rcode != dns.RcodeSuccess {
			return 0, fmt.Errorf("%s: %s", name, dns.RcodeToString[r.Rcode])
		}
		return len(r.Answer), nil
	}
}

// dnsA asks once, on a fresh socket.
func dnsA(port int, name string) (int, error) {
	c, err := dialDNS(port)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.a(name)
}

// watch holds o.watchers blocking queries on a follower, all on one
// service, and changes the service o.watchRound times.
func (b *bench) watch() error {
	o := b.o
	srv, err := b.follower()
	if err != nil {
		return err
	}
	leader, err := b.leader()
	if err != nil {
		return err
	}
	svc := svcName(0)
	path := srv.HTTP + "/v1/health/service/" + svc + "?stale"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.watchers + 16, IdleConnTimeout: time.Minute}}
	defer hc.CloseIdleConnections()
	index := func(resp *http.Response) uint64 {
		v, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
		return v
	}
	resp, err := hc.Get(path)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	idx := index(resp)
	rss0, err := agentproc.RSS(srv.Pid())
	if err != nil {
		return err
	}

	for round := range o.watchRound {
		var (
			returned  = make([]time.Duration, o.watchers)
			changedAt atomic.Int64 // unix nanos of the write's submission
			errs      atomic.Int64
			firstErr  atomic.Value
			wg        sync.WaitGroup
			nextIdx   atomic.Uint64
		)
		for w := range o.watchers {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
				defer cancel()
				at := idx
				for {
					req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s&index=%d&wait=90s", path, at), nil)
					resp, err := hc.Do(req)
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode != 200 {
							err = fmt.Errorf("watch: %s", resp.Status)
						}
					}
					changed := changedAt.Load()
					if err == nil && changed == 0 {
						// Woken before the change (the service moved for
						// another reason): block again from the new index.
						at = index(resp)
						continue
					}
					returned[w] = time.Duration(time.Now().UnixNano() - changed)
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err)
						return
					}
					nextIdx.Store(max(nextIdx.Load(), index(resp)))
					return
				}
			})
		}
		// All parked: the server holds them open.
		if _, err := b.waitMetric(srv, time.Minute, "meshd_rpc_client_blocking_queries", func(v float64) bool { return v >= float64(o.watchers) }); err != nil {
			changedAt.Store(time.Now().UnixNano())
			return fmt.Errorf("watchers did not all park: %w", err)
		}
		if round == 0 {
			rss, err := agentproc.RSS(srv.Pid())
			if err != nil {
				return err
			}
			m, err := srv.Scrape()
			if err != nil {
				return err
			}
			heap, err := m.Sum("go_memstats_heap_inuse_bytes")
			if err != nil {
				return err
			}
			stacks, err := m.Sum("go_memstats_stack_inuse_bytes")
			if err != nil {
				return err
			}
			if err := b.heapProfile(srv, "watchers-heap-"+srv.Name); err != nil {
				return err
			}
			b.t.add("watchers", fmt.Sprintf("%s holding %d blocking HTTP queries", srv.Name, o.watchers), "RSS %.0f MB (%+.0f MB, %.1f KB per watcher): heap %.0f MB, goroutine stacks %.0f MB",
				mb(rss), mb(rss-rss0), float64(rss-rss0)/1e3/float64(o.watchers), heap/1e6, stacks/1e6)
		}
		cpu0, err := agentproc.CPUSeconds(srv.Pid())
		if err != nil {
			return err
		}
		var wait func()
		if round == 0 {
			wait = b.profile(srv, 3*time.Second, "watchers-"+srv.Name)
		}
		t0 := time.Now()
		changedAt.Store(t0.UnixNano())
		body := fmt.Sprintf(`{"Node":"ext-0000","Address":"10.1.0.1","Service":{"ID":"%s-watched","Service":"%s","Port":%d}}`, svc, svc, 40000+round)
		if err := leader.Put("/v1/catalog/register", body); err != nil {
			return err
		}
		ack := time.Since(t0)
		wg.Wait()
		all := time.Since(t0)
		cpu1, err := agentproc.CPUSeconds(srv.Pid())
		if err != nil {
			return err
		}
		if wait != nil {
			wait()
		}
		if n := errs.Load(); n > 0 {
			return fmt.Errorf("%d of %d watchers failed: %v", n, o.watchers, firstErr.Load())
		}
		p := pct(returned)
		b.t.add("watchers", fmt.Sprintf("%d blocking queries on %s, one change (round %d)", o.watchers, srv.Name, round+1),
			"write acknowledged after %.1f ms; watchers returned: first %s, median %s, **last %s**", float64(ack)/1e6, p(0), p(0.5), p(1))
		b.t.add("watchers", fmt.Sprintf("%s's CPU from the change until the last return (round %d)", srv.Name, round+1),
			"%.2f s of CPU in %v", cpu1-cpu0, all.Round(time.Millisecond))
		idx = nextIdx.Load()
	}
	return nil
}

// gossip adds o.gossipAgents client agents, kills one, and times until
// every other agent knows it failed.
func (b *bench) gossip() error {
	o := b.o
	if o.gossipAgents == 0 {
		return nil
	}
	t0 := time.Now()
	added, err := b.c.AddClients(o.gossipAgents, "g", []string{"-dns-port", "-1"})
	if err != nil {
		return err
	}
	all := slices.Clone(b.c.Clients)
	all = append(all, b.c.Servers...)
	n := len(all)
	// Everyone sees everyone alive.
	if err := b.eachUntil(all, 2*time.Minute, func(ms []member) bool {
		alive := 0
		for _, m := range ms {
			if m.Status == 1 {
				alive++
			}
		}
		return alive == n
	}); err != nil {
		return fmt.Errorf("converge on %d members: %w", n, err)
	}
	b.t.add("gossip", fmt.Sprintf("%d more client agents joined: %d members", len(added), n), "all see all alive after %v", time.Since(t0).Round(time.Millisecond))
	var rss int64
	for _, a := range added {
		r, err := agentproc.RSS(a.Pid())
		if err != nil {
			return err
		}
		rss += r
	}
	b.t.add("gossip", "mean RSS of those agents", "%.0f MB", mb(rss)/float64(len(added)))

	// The SWIM model of gossip/README.md, meshd's LAN settings.
	const (
		probe    = 0.5 // s
		mult     = 3.0
		interval = 0.2 // gossip interval, s
		fanout   = 3.0
	)
	minSusp := mult * math.Max(1, math.Log10(float64(n))) * probe
	spread := (math.Log(float64(n))/math.Log(fanout+1) + math.Log(float64(n))/fanout) * interval
	gossipers := added[:len(added)-2] // the two victims are killed below
	gcpu0, err := cpus(gossipers)
	if err != nil {
		return err
	}
	gt0 := time.Now()
	others := all
	for round, victim := range []*agentproc.Agent{added[len(added)-1], added[len(added)-2]} {
		others = slices.DeleteFunc(slices.Clone(others), func(a *agentproc.Agent) bool { return a == victim })
		victim.Kill()
		t0 := time.Now()
		knew := make([]time.Duration, len(others))
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i, a := range others {
			wg.Go(func() {
				deadline := t0.Add(time.Minute)
				for time.Now().Before(deadline) && b.ctx.Err() == nil {
					ms, err := members(a)
					if err == nil && slices.ContainsFunc(ms, func(m member) bool { return m.Name == victim.Name && m.Status == 4 }) {
						knew[i] = time.Since(t0)
						return
					}
					agentproc.SleepCtx(b.ctx, 100*time.Millisecond)
				}
				failed.Add(1)
			})
		}
		wg.Wait()
		if f := failed.Load(); f > 0 {
			return fmt.Errorf("%d agents did not learn that %s failed within a minute", f, victim.Name)
		}
		p := pct(knew)
		b.t.add("gossip", fmt.Sprintf("%s killed (%d members): known failed by", victim.Name, n-round),
			"first %s, median %s, **all %d others %s** (polled every 100 ms)", p(0), p(0.5), len(others), p(1))
		if round == 0 {
			b.t.add("gossip", "SWIM model (gossip/README.md) at this size", "suspicion min %.1f s; spread %.1f s = (log₄ n + ln n / 3) gossip rounds of 200 ms; crash → everyone ≈ %.1f s mean",
				minSusp, spread, probe+probe+minSusp+spread)
		}
	}
	gcpu1, err := cpus(gossipers)
	if err != nil {
		return err
	}
	var used []float64
	for i := range gossipers {
		used = append(used, 100*(gcpu1[i]-gcpu0[i])/time.Since(gt0).Seconds())
	}
	b.t.add("gossip", "CPU of an idle client agent meanwhile (two failures, polled members)", "%.1f%% of one core mean, %.1f%% max", mean(used), slices.Max(used))
	return nil
}

type member struct {
	Name   string
	Status int
}

func members(a *agentproc.Agent) ([]member, error) {
	body, err := a.GetTimeout("/v1/agent/members", 5*time.Second)
	if err != nil {
		return nil, err
	}
	var ms []member
	return ms, json.Unmarshal(body, &ms)
}

// eachUntil polls every agent's members until ok holds on each.
func (b *bench) eachUntil(as []*agentproc.Agent, timeout time.Duration, ok func([]member) bool) error {
	deadline := time.Now().Add(timeout)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range as {
		wg.Go(func() {
			for {
				ms, err := members(a)
				if err == nil && ok(ms) {
					return
				}
				if time.Now().After(deadline) || b.ctx.Err() != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %d members seen (%v)", a.Name, len(ms), err)
					}
					mu.Unlock()
					return
				}
				agentproc.SleepCtx(b.ctx, 200*time.Millisecond)
			}
		})
	}
	wg.Wait()
	return firstErr
}
