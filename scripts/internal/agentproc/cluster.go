package agentproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClusterSpec describes a cluster of real meshd processes on loopback,
// each with its own data dir under Dir, joined through the first server's
// gossip port.
type ClusterSpec struct {
	Bin     string
	Dir     string
	Servers int // voters, bootstrapped together (3 or 5)
	Clients int
	// Workers sizes each agent's HTTP client.
	Workers int
	// ServerArgs and ClientArgs are extra agent flags.
	ServerArgs, ClientArgs []string
	// ServerEnv is extra environment for the servers (GOGC=..., GOMEMLIMIT=...).
	ServerEnv []string
	// LogDir, when set, gets each member's errors in <name>.log instead
	// of this process's stderr.
	LogDir string
}

// Cluster is the running agents. Members' fields are set once started;
// AddClients may grow Clients.
type Cluster struct {
	spec    ClusterSpec
	ctx     context.Context
	join    string
	mu      sync.Mutex
	Servers []*Agent
	Clients []*Agent
	logs    []*os.File // closed by Stop
}

// StartCluster launches spec's servers and clients and waits until every
// one names a leader. ctx bounds every member's life.
func StartCluster(ctx context.Context, spec ClusterSpec) (*Cluster, error) {
	if spec.Servers < 1 {
		spec.Servers = 3
	}
	c := &Cluster{spec: spec, ctx: ctx}
	for i := range spec.Servers {
		a, err := c.launch(fmt.Sprintf("server%d", i+1), true, nil)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Servers = append(c.Servers, a)
		if i == 0 {
			// The others join through its gossip port: let it open first,
			// or their join waits for its next retry.
			if err := a.WaitAnswers(ctx, 30*time.Second); err != nil {
				c.Stop()
				return nil, err
			}
		}
	}
	if _, err := c.AddClients(spec.Clients, "client", nil); err != nil {
		c.Stop()
		return nil, err
	}
	for _, a := range c.Servers {
		if err := a.WaitUp(60 * time.Second); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// AddClients launches n more client agents named prefix1..prefixN (after
// those already running with that prefix), with extra flags on top of the
// spec's, and waits until each names a leader.
func (c *Cluster) AddClients(n int, prefix string, extra []string) ([]*Agent, error) {
	c.mu.Lock()
	have := 0
	for _, a := range c.Clients {
		if strings.HasPrefix(a.Name, prefix) {
			have++
		}
	}
	c.mu.Unlock()
	var added []*Agent
	for i := range n {
		a, err := c.launch(fmt.Sprintf("%s%d", prefix, have+i+1), false, extra)
		if err != nil {
			return added, err
		}
		added = append(added, a)
		c.mu.Lock()
		c.Clients = append(c.Clients, a)
		c.mu.Unlock()
	}
	for _, a := range added {
		if err := a.WaitUp(90 * time.Second); err != nil {
			return added, err
		}
	}
	return added, nil
}

// launch starts one member on free ports.
func (c *Cluster) launch(name string, server bool, extra []string) (*Agent, error) {
	p, err := freePorts(4) // http, dns, server, serf lan
	if err != nil {
		return nil, err
	}
	if c.join == "" {
		c.join = "127.0.0.1:" + strconv.Itoa(p[3])
	}
	dnsPort := p[1]
	if server {
		dnsPort = -1
	}
	argv := []string{c.spec.Bin, "agent", "-node", name, "-data-dir", filepath.Join(c.spec.Dir, name),
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "warn",
		"-http-port", strconv.Itoa(p[0]), "-dns-port", strconv.Itoa(dnsPort), "-server-port", strconv.Itoa(p[2]),
		"-serf-lan-port", strconv.Itoa(p[3]), "-serf-wan-port", "-1", "-retry-join", c.join}
	if server {
		argv = append(argv, "-server", "-bootstrap-expect", strconv.Itoa(c.spec.Servers))
		argv = append(argv, c.spec.ServerArgs...)
	} else {
		argv = append(argv, c.spec.ClientArgs...)
	}
	argv = append(argv, extra...)
	var env []string
	if server {
		env = c.spec.ServerEnv
	}
	var stderr io.Writer = os.Stderr
	if c.spec.LogDir != "" {
		f, err := os.OpenFile(filepath.Join(c.spec.LogDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		c.logs = append(c.logs, f)
		stderr = f
	}
	a, err := launchTo(c.ctx, argv, env, stderr, c.spec.Workers, p[0], dnsPort)
	if err != nil {
		return nil, err
	}
	a.Name = name
	if server {
		a.ServerAddr = "127.0.0.1:" + strconv.Itoa(p[2])
	}
	return a, nil
}

// Leader returns the server that the live servers name as leader, or nil
// when none answers with one it knows.
func (c *Cluster) Leader() *Agent {
	c.mu.Lock()
	servers := slices.Clone(c.Servers)
	c.mu.Unlock()
	for _, s := range servers {
		b, err := s.GetTimeout("/v1/status/leader", time.Second)
		if err != nil {
			continue
		}
		addr := strings.Trim(strings.TrimSpace(string(b)), `"`)
		for _, l := range servers {
			if addr != "" && l.ServerAddr == addr {
				return l
			}
		}
	}
	return nil
}

// StopWithin interrupts every member and waits up to d for each to exit
// (see Agent.StopWithin), then closes their log files; the error names
// those that did not exit.
func (c *Cluster) StopWithin(d time.Duration) error {
	c.mu.Lock()
	all := append(slices.Clone(c.Clients), c.Servers...)
	c.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, a := range all {
		wg.Go(func() { errs[i] = a.StopWithin(d) })
	}
	wg.Wait()
	for _, f := range c.logs {
		f.Close()
	}
	return errors.Join(errs...)
}

// Stop interrupts every member and waits for them to exit, a minute at
// most (a member that does not is killed and named on stderr).
func (c *Cluster) Stop() {
	if err := c.StopWithin(time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, "agentproc:", err)
	}
}

func freePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// WaitAnswers waits until a's HTTP API answers, leader or not.
func (a *Agent) WaitAnswers(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := a.GetTimeout("/v1/agent/self", time.Second); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering: %w", a.HTTP, err)
		}
		if !SleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// Kill ends the agent with SIGKILL, as a crash, and reaps it.
func (a *Agent) Kill() {
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
}

// Restart starts the agent again, with the same arguments (ports and data
// dir), after it stopped. ctx bounds the new process.
func (a *Agent) Restart(ctx context.Context) error {
	cmd, err := startCmd(ctx, a.cmd.Args, a.cmd.Env, a.stderr)
	if err != nil {
		return fmt.Errorf("restart %s: %w", a.Name, err)
	}
	a.cmd = cmd
	return nil
}

// Metric sums the values of a's Prometheus series called name whose
// labels contain every one of match (such as `method="Health.ServiceNodes"`).
func (a *Agent) Metric(name string, match ...string) (float64, error) {
	m, err := a.Scrape()
	if err != nil {
		return 0, err
	}
	return m.Sum(name, match...)
}

// Metrics is one scrape of an agent's Prometheus metrics, a line each.
type Metrics []string

// Scrape fetches a's metrics once, for reading several series of the same
// moment (and without walking a server's catalog for each).
func (a *Agent) Scrape() (Metrics, error) {
	b, err := a.Get("/v1/agent/metrics?format=prometheus")
	if err != nil {
		return nil, err
	}
	return Metrics(strings.Split(string(b), "\n")), nil
}

// Sum is Metric on a scrape.
func (m Metrics) Sum(name string, match ...string) (float64, error) {
	var sum float64
next:
	for _, line := range m {
		sp := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || sp < 0 {
			continue
		}
		series := line[:sp]
		if n, _, _ := strings.Cut(series, "{"); n != name {
			continue
		}
		for _, m := range match {
			if !strings.Contains(series, m) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, nil
}

// RSS is a process's resident set size in bytes, from /proc.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// SleepCtx waits d or until ctx ends; it says whether d passed.
func SleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
