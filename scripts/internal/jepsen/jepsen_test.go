package jepsen

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/meshd/meshd/scripts/internal/agentproc"
)

// meshd is the binary the tests run, built once by TestMain, or the one
// MESHD_TEST_BIN names (to check an older build).
var meshd string

func TestMain(m *testing.M) {
	if meshd = os.Getenv("MESHD_TEST_BIN"); meshd != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "meshd-jepsen-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	meshd = filepath.Join(dir, "meshd")
	build := exec.Command("go", "build", "-o", meshd, "github.com/meshd/meshd/cmd/meshd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build meshd:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestCheckerReportsStaleReads tests the checker: a proxy in front of a
// real server that answers some reads from an old copy must make both
// histories fail, with a visualization written.
func TestCheckerReportsStaleReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a, err := agentproc.Start(ctx, meshd, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	proxy := httptest.NewServer(&staleProxy{backend: a.HTTP, old: map[string][]byte{}})
	defer proxy.Close()

	h := NewHistory()
	rctx, rcancel := context.WithTimeout(ctx, 4*time.Second)
	Run(rctx, Workload{Servers: []string{proxy.URL}, Clients: 4, Keys: 2, OpTimeout: 5 * time.Second}, h)
	rcancel()
	ops := h.Ops()
	for _, mode := range []Kind{ReadConsistent, ReadDefault} {
		viz := filepath.Join(t.TempDir(), "history.html")
		res, err := Check(ops, mode, time.Minute, viz)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d ops, %s", mode, res.Ops, outcome(res.Outcome))
		if res.Outcome != porcupine.Illegal {
			t.Errorf("%s: a history with stale reads was found %s", mode, outcome(res.Outcome))
		}
		if b, err := os.ReadFile(viz); err != nil || !strings.Contains(string(b), "<html") {
			t.Errorf("%s: no visualization written (%v)", mode, err)
		}
	}
}

// staleProxy forwards to backend, but answers about a third of the reads
// with an answer it saw for the same URL a while ago.
type staleProxy struct {
	backend string
	mu      sync.Mutex // guards old
	old     map[string][]byte
}

func (p *staleProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == "GET" && rand.N(3) == 0 {
		p.mu.Lock()
		b, ok := p.old[r.URL.String()]
		p.mu.Unlock()
		if ok {
			w.Write(b)
			return
		}
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.backend+r.URL.String(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if r.Method == "GET" && resp.StatusCode == 200 {
		p.mu.Lock()
		if _, ok := p.old[r.URL.String()]; !ok || rand.N(10) == 0 {
			p.old[r.URL.String()] = b // keep the first answer, renewed rarely
		}
		p.mu.Unlock()
	}
	w.Header().Set("X-Consul-Index", resp.Header.Get("X-Consul-Index"))
	w.WriteHeader(resp.StatusCode)
	w.Write(b)
}

// TestLinearizableUnderFaults is the short checked run of make test: 3
// servers, 6 clients on 4 registers, each of the three faults at least
// once; both the consistent and the default reads must be linearizable
// with the writes, and every server must come back and catch up.
// scripts/jepsen runs the long ones.
func TestLinearizableUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("a 45 s run of 3 real servers under faults")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	rep, err := RunChecked(ctx, Spec{
		Bin: meshd, Dir: t.TempDir(), Servers: 3, Duration: 45 * time.Second,
		Workload:   Workload{Clients: 6, Keys: 4, OpTimeout: 5 * time.Second, Pace: 5 * time.Millisecond},
		Nemesis:    Nemesis{Faults: []Fault{PauseLeader, KillLeader, RestartFollower}, Quiet: 3 * time.Second, Down: 1500 * time.Millisecond},
		CheckLimit: time.Minute,
		Logf:       t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if len(rep.Faults) < 3 {
		t.Errorf("%d faults injected, want every kind at least once", len(rep.Faults))
	}
	if !rep.Ok() {
		t.Fatalf("not linearizable: %s", rep)
	}
}

// TestPausedLeaderCannotUndoAWrite is the reproduction, on the
// real binary: with the leader paused, a write through a follower is
// forwarded to it, then re-sent to the new leader and acknowledged; a
// newer write is acknowledged and read back; when the old leader
// resumes, it reads the forwarded request still waiting in its socket
// and passes it on. That late copy must change nothing: every consistent
// read keeps answering the newer value, and the new leader counts the
// copy as a duplicate.
func TestPausedLeaderCannotUndoAWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("3 real servers and a paused leader")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := agentproc.StartCluster(ctx, agentproc.ClusterSpec{Bin: meshd, Dir: dir, Servers: 3, Workers: 2, LogDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	l, err := waitLeader(Processes(c))
	if err != nil {
		t.Fatal(err)
	}
	var leader, follower *agentproc.Agent
	for _, s := range c.Servers {
		if s.Name == l.Name() {
			leader = s
		} else {
			follower = s
		}
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	put := func(v string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "PUT", follower.HTTP+"/v1/catalog/register", strings.NewReader(string(registerBody(0, v))))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("write %q: %v", v, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("write %q: %d %s", v, resp.StatusCode, b)
		}
	}
	h := NewHistory()
	get := func(server string) (string, bool) {
		op := read(ctx, hc, h, server, 0, 0, ReadConsistent)
		return op.Value, op.Return != 0
	}
	put("initial")

	if err := leader.Pause(); err != nil {
		t.Fatal(err)
	}
	defer func() { // SIGCONT to a running process does nothing
		if err := leader.Resume(); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	put("old") // forwarded to the paused leader, re-sent to the new one
	t.Logf("\"old\" acknowledged %v after the pause, by a new leader", time.Since(start).Round(time.Millisecond))
	put("new")
	if v, ok := get(follower.HTTP); !ok || v != "new" {
		t.Fatalf("consistent read after the newer write: %q (answered %v)", v, ok)
	}
	if err := leader.Resume(); err != nil {
		t.Fatal(err)
	}

	dups := func() float64 {
		var sum float64
		for _, s := range c.Servers {
			if n, err := s.Metric("meshd_raft_duplicate_writes_total"); err == nil {
				sum += n
			}
		}
		return sum
	}
	deadline := time.Now().Add(8 * time.Second)
	reads := 0
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if v, ok := get(s.HTTP); ok {
				reads++
				if v != "new" {
					t.Fatalf("%v after the old leader resumed, a consistent read through %s says %q: an acknowledged write was undone by an older one",
						time.Since(start).Round(time.Millisecond), s.Name, v)
				}
			}
		}
		if !agentproc.SleepCtx(ctx, 100*time.Millisecond) {
			t.Fatal(ctx.Err())
		}
	}
	absorbed := dups()
	t.Logf("%d consistent reads over 8 s after the resume, all \"new\"; duplicates absorbed: %v", reads, absorbed)
	if reads == 0 {
		t.Fatal("no consistent read answered after the resume")
	}
	if absorbed < 1 {
		t.Error("the late copy of \"old\" never reached the new leader: the scenario did not happen as intended")
	}
}

// TestDeposedReads: a default read is a deposed leader's when an answer in
// a newer term was called before it returned, and only then.
func TestDeposedReads(t *testing.T) {
	ops := []Op{
		{Client: 0, Kind: ReadDefault, Call: 10, Return: 20, Term: 2},    // newer term called at 15: deposed
		{Client: 1, Kind: ReadConsistent, Call: 15, Return: 16, Term: 3}, // the newer term
		{Client: 2, Kind: ReadDefault, Call: 17, Return: 18, Term: 3},    // current: kept
		{Client: 3, Kind: ReadDefault, Call: 1, Return: 5, Term: 2},      // before the newer term: kept
		{Client: 4, Kind: Write, Call: 2, Return: 30},                    // no term: not a read
		{Client: 5, Kind: ReadDefault, Call: 40, Return: 41, Term: 2},    // long after: deposed
		{Client: 6, Kind: ReadConsistent, Call: 42, Return: 43, Term: 1}, // other mode: never listed
	}
	slices.SortFunc(ops, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	var got []int
	for _, op := range deposedReads(ops, ReadDefault) {
		got = append(got, op.Client)
	}
	if want := []int{0, 5}; !slices.Equal(got, want) {
		t.Fatalf("deposed reads of clients %v, want %v", got, want)
	}
}
