package jepsen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/meshd/meshd/scripts/internal/agentproc"
)

// Spec is one checked run: a cluster of real servers on loopback, clients
// on every server, and the nemesis.
type Spec struct {
	// Bin is the meshd binary; Dir holds the servers' data directories,
	// their logs (<name>.log) and the visualizations of failed checks.
	Bin, Dir string
	Servers  int
	Duration time.Duration
	Workload Workload // Servers is filled in from the cluster
	Nemesis  Nemesis  // Cluster is filled in
	// CheckLimit bounds each porcupine check; a check that runs out of
	// time fails the run.
	CheckLimit time.Duration
	// ServerArgs are extra flags for the servers.
	ServerArgs []string
	Logf       func(format string, args ...any)
}

// Report is what a run did and found.
type Report struct {
	Ops, Writes, UnknownWrites int
	ConsistentReads, Reads     int
	Faults                     []Injected
	Results                    []Result
	// CaughtUp is how long the servers took, after the run, to all reach
	// the highest index any answer showed.
	CaughtUp time.Duration
}

// Ok reports whether every check passed.
func (r *Report) Ok() bool {
	for _, res := range r.Results {
		if !res.Passed() {
			return false
		}
	}
	return len(r.Results) > 0
}

func (r *Report) String() string {
	s := fmt.Sprintf("%d ops (%d writes, %d of unknown outcome; %d consistent and %d default reads), %d faults",
		r.Ops, r.Writes, r.UnknownWrites, r.ConsistentReads, r.Reads, len(r.Faults))
	for _, res := range r.Results {
		s += fmt.Sprintf("; %s: %s (%d ops, %v)", res.Mode, outcome(res.Outcome), res.Ops, res.Took.Round(time.Millisecond))
		if len(res.Deposed) > 0 {
			verdict := "still NOT linearizable"
			if res.Explained {
				verdict = "linearizable"
			}
			s += fmt.Sprintf(", %s without the %d reads a deposed leader answered", verdict, len(res.Deposed))
		}
		if res.Visualization != "" {
			s += " see " + res.Visualization
		}
	}
	return s
}

func outcome(c porcupine.CheckResult) string {
	switch c {
	case porcupine.Ok:
		return "linearizable"
	case porcupine.Illegal:
		return "NOT linearizable"
	}
	return "UNKNOWN (check ran out of time)"
}

// RunChecked runs spec on a cluster of servers on loopback it starts,
// and checks its history, writes with consistent reads and writes with
// default reads. ctx bounds the whole run.
func RunChecked(ctx context.Context, spec Spec) (*Report, error) {
	cluster, err := agentproc.StartCluster(ctx, agentproc.ClusterSpec{
		Bin: spec.Bin, Dir: spec.Dir, Servers: spec.Servers, Workers: 4, ServerArgs: spec.ServerArgs, LogDir: spec.Dir,
	})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			cluster.Stop()
		}
	}()
	// Before checking, which may take the machine for a while; every
	// server must shut down.
	return RunOn(ctx, Processes(cluster), spec, func() error {
		stopped = true
		if err := cluster.StopWithin(30 * time.Second); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	})
}

// RunOn runs spec's clients and nemesis against c, already running, waits
// for every server to catch up, calls beforeCheck (nil: none), and checks
// the history. Spec's Bin, Servers and ServerArgs are not used; Dir
// receives the visualizations and the deposed leader's reads.
func RunOn(ctx context.Context, c Cluster, spec Spec, beforeCheck func() error) (*Report, error) {
	logf := spec.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	w := spec.Workload
	for _, s := range c.Servers() {
		w.Servers = append(w.Servers, s.HTTP())
	}
	nem := spec.Nemesis
	nem.Cluster, nem.Logf = c, logf

	h := NewHistory()
	rctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	var wg sync.WaitGroup
	var faults []Injected
	var nemErr error
	wg.Go(func() {
		if faults, nemErr = nem.Run(rctx, h); nemErr != nil {
			cancel() // the run has failed: stop the clients now
		}
	})
	Run(rctx, w, h)
	wg.Wait()
	if nemErr != nil {
		return nil, fmt.Errorf("nemesis: %w", nemErr)
	}

	rep := &Report{Faults: faults}
	ops := h.Ops()
	var top uint64
	for _, op := range ops {
		rep.Ops++
		switch op.Kind {
		case Write:
			rep.Writes++
			if op.Return == Unknown {
				rep.UnknownWrites++
			}
		case ReadConsistent:
			rep.ConsistentReads++
		case ReadDefault:
			rep.Reads++
		}
		top = max(top, op.Index)
	}
	// Every server, the killed and restarted ones included, must be back
	// and caught up.
	start := time.Now()
	for _, s := range c.Servers() {
		if err := waitIndex(ctx, s, top, time.Minute); err != nil {
			return rep, fmt.Errorf("server %s did not catch up: %w", s.Name(), err)
		}
	}
	rep.CaughtUp = time.Since(start)
	if beforeCheck != nil {
		if err := beforeCheck(); err != nil {
			return rep, err
		}
	}
	for _, mode := range []Kind{ReadConsistent, ReadDefault} {
		viz := filepath.Join(spec.Dir, fmt.Sprintf("history-%s.html", map[Kind]string{ReadConsistent: "consistent", ReadDefault: "default"}[mode]))
		res, err := Check(ops, mode, spec.CheckLimit, viz)
		if err != nil {
			return rep, err
		}
		rep.Results = append(rep.Results, res)
		if len(res.Deposed) > 0 {
			if err := writeDeposed(filepath.Join(spec.Dir, "deposed-reads.txt"), res.Deposed); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// waitIndex waits until s answers a stale read at index at least idx.
func waitIndex(ctx context.Context, s Server, idx uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", s.HTTP()+"/v1/catalog/services?stale", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body) // so the next poll reuses the connection
			resp.Body.Close()
			got, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
			if resp.StatusCode == 200 && got >= idx {
				return nil
			}
			err = fmt.Errorf("at index %d, want %d", got, idx)
		}
		if time.Now().After(deadline) {
			return err
		}
		if !agentproc.SleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// writeDeposed lists the reads a deposed leader answered, one a line.
func writeDeposed(path string, ops []Op) error {
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "client %d k%d read %q at %v-%v via %s, answered by %s in term %d\n",
			op.Client, op.Key, op.Value, time.Duration(op.Call), time.Duration(op.Return), op.Server, op.ServedBy, op.Term)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
