package checks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

func TestNewRunner(t *testing.T) {
	_, err := NewRunner(Config{})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Notifier" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewRunner without a Notifier = %v", err)
	}
	r, err := NewRunner(Config{Notifier: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown of a runner that never ran: %v", err)
	}
}

func TestAddErrors(t *testing.T) {
	noScripts := newHarness(t, func(c *Config) { c.EnableScripts = false })
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name    string
		r       *Runner
		def     Definition
		initial string
		want    error
	}{
		{"invalid", h.r, Definition{ID: "c", HTTP: "http://x"}, "", ErrInvalid},
		{"bad initial status", h.r, Definition{ID: "c", TTL: time.Second}, "up", ErrInvalidStatus},
		{"scripts disabled", noScripts.r, Definition{ID: "c", Args: []string{"true"}, Interval: time.Second}, "", ErrScriptsDisabled},
		{"alias without a source", h.r, Definition{ID: "c", AliasService: "web"}, "", ErrNoAliasSource},
		{"ok", h.r, Definition{ID: "c", TTL: time.Second}, StatusWarning, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.r.Add(tc.def, tc.initial); !errors.Is(err, tc.want) {
				t.Fatalf("Add = %v, want %v", err, tc.want)
			}
		})
	}
	if err := h.r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Add(Definition{ID: "d", TTL: time.Second}, ""); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Add after Shutdown = %v, want ErrShutdown", err)
	}
	h.r.Remove("c") // harmless
}

// TestJitter adds 1,000 checks with the same interval and records when
// their first runs happen: they must spread over the whole interval.
func TestJitter(t *testing.T) {
	l, accepted := listen(t, "127.0.0.1:0")
	h := newHarness(t, nil)
	const (
		n        = 1000
		interval = 2 * time.Second
		buckets  = 10
	)
	for i := range n {
		h.add(Definition{ID: "c" + strconv.Itoa(i), TCP: l.Addr().String(), Interval: interval}, StatusPassing)
	}
	h.clock.waitPending(t, n) // every check waits for its first run

	counts := make([]int, buckets)
	total := 0
	for b := range buckets {
		// Each timer that fires here is a first run: the next runs come an
		// interval after a first run, so after the end of the interval.
		counts[b] = h.clock.Advance(interval / buckets)
		total += counts[b]
		testkit.Eventually(t, waitTimeout, "the runs of bucket "+strconv.Itoa(b), func() bool { return accepted.Load() == int64(total) })
	}
	share := n / buckets
	lo, hi := n, 0
	for _, c := range counts {
		lo, hi = min(lo, c), max(hi, c)
	}
	t.Logf("first runs per %s of a %s interval: %v (min %d, max %d, fair share %d)", interval/buckets, interval, counts, lo, hi, share)
	if total != n {
		t.Fatalf("%d first runs within the interval, want %d", total, n)
	}
	for b, c := range counts {
		if c < share/3 || c > 3*share {
			t.Errorf("bucket %d has %d first runs; want between %d and %d", b, c, share/3, 3*share)
		}
	}
	testkit.Eventually(t, waitTimeout, "1000 passing reports", func() bool { return h.rec.count() == n })
}

// TestFlapDamping drives a TTL check with the fake clock: more than
// FlapThreshold changes within FlapWindow hold it critical until enough
// of them left the window.
func TestFlapDamping(t *testing.T) {
	h := newHarness(t, nil)
	h.add(Definition{ID: "f", TTL: time.Hour, FlapThreshold: 3, FlapWindow: time.Minute}, "")
	const flapping = "flapping: %d status changes in 1m0s; held critical. Last result: %s"
	for i, st := range []struct {
		at         time.Duration // since the start
		beat       string        // status:output, or "" for none
		wantStatus string        // "" = no update
		wantOutput string
	}{
		{at: 0, beat: "passing:ok", wantStatus: StatusPassing, wantOutput: "ok"},                    // 1 change
		{at: 10 * time.Second, beat: "critical:bad", wantStatus: StatusCritical, wantOutput: "bad"}, // 2
		{at: 20 * time.Second, beat: "passing:ok", wantStatus: StatusPassing, wantOutput: "ok"},     // 3
		{at: 30 * time.Second, beat: "critical:bad", wantStatus: StatusCritical, wantOutput: fmt.Sprintf(flapping, 4, "critical: bad")},
		{at: 40 * time.Second, beat: "passing:ok", wantStatus: StatusCritical, wantOutput: fmt.Sprintf(flapping, 5, "passing: ok")},
		{at: 45 * time.Second, beat: "passing:ok"}, // no change: nothing to report
		{at: 69 * time.Second}, // 4 changes left in the window
		{at: 70 * time.Second, wantStatus: StatusPassing, wantOutput: "ok"},                   // 3 left: released without a heartbeat
		{at: 80 * time.Second, beat: "warning:w", wantStatus: StatusWarning, wantOutput: "w"}, // 30s, 40s, 80s: not more than 3
		{at: 85 * time.Second, beat: "passing:ok", wantStatus: StatusCritical, wantOutput: fmt.Sprintf(flapping, 4, "passing: ok")},
		{at: 89 * time.Second}, // 30s, 40s, 80s, 85s
		{at: 90 * time.Second, wantStatus: StatusPassing, wantOutput: "ok"}, // the change at 30s left
	} {
		before := h.rec.count()
		h.clock.Advance(st.at - h.clock.Elapsed())
		if st.beat != "" {
			status, output, _ := strings.Cut(st.beat, ":")
			if err := h.r.Heartbeat("f", status, output); err != nil {
				t.Fatal(err)
			}
		}
		got := h.rec.all()[before:]
		switch {
		case st.wantStatus == "" && len(got) != 0:
			t.Fatalf("step %d (%s): reported %v, want nothing", i, st.at, got)
		case st.wantStatus != "" && (len(got) != 1 || got[0].status != st.wantStatus || got[0].output != st.wantOutput):
			t.Fatalf("step %d (%s): reported %v, want %s: %q", i, st.at, got, st.wantStatus, st.wantOutput)
		}
	}
}

// slowServer hangs every request until the client gives up; it counts
// the requests that arrived and that were aborted.
type slowServer struct {
	*httptest.Server
	arrived, aborted atomic.Int64
}

func newSlowServer(t *testing.T) *slowServer {
	s := &slowServer{}
	release := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.arrived.Add(1)
		select {
		case <-r.Context().Done():
			s.aborted.Add(1)
		case <-release:
		}
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) })
	return s
}

// TestRemove: Remove cancels the probe in flight and nothing is reported
// after it returns.
func TestRemove(t *testing.T) {
	goroutineBaseline(t)
	srv := newSlowServer(t)
	h := newHarness(t, nil)
	h.add(Definition{ID: "web", HTTP: srv.URL, Interval: time.Second, Timeout: time.Hour}, "")
	h.add(Definition{ID: "ttl", TTL: time.Second}, "")
	h.clock.waitPending(t, 2)
	h.clock.Advance(time.Second - 1) // the HTTP check's first run, not the TTL
	testkit.Eventually(t, waitTimeout, "the request", func() bool { return srv.arrived.Load() == 1 })

	start := time.Now()
	h.r.Remove("web")
	h.r.Remove("ttl")
	t.Logf("Remove with a request in flight took %s", time.Since(start))
	testkit.Eventually(t, waitTimeout, "the request to be aborted", func() bool { return srv.aborted.Load() == 1 })
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("%d timers still pending", n)
	}
	h.clock.Advance(time.Hour)
	if got := h.rec.all(); len(got) != 0 {
		t.Fatalf("reported %v", got)
	}
	h.r.Remove("web") // again: harmless
}

// TestReplace: Add of an existing ID stops the old check, its probe in
// flight included, before the new one starts.
func TestReplace(t *testing.T) {
	slow := newSlowServer(t)
	codes := newCodeServer(t)
	h := newHarness(t, nil)
	h.add(Definition{ID: "web", HTTP: slow.URL, Interval: time.Second, Timeout: time.Hour}, "")
	h.step0()
	testkit.Eventually(t, waitTimeout, "the request", func() bool { return slow.arrived.Load() == 1 })

	h.add(Definition{ID: "web", HTTP: codes.URL, Interval: time.Second}, StatusWarning)
	if slow.aborted.Load() != 1 {
		// The transport cancels before the old goroutine exits, but the
		// server may learn of it a little later.
		testkit.Eventually(t, waitTimeout, "the old request to be aborted", func() bool { return slow.aborted.Load() == 1 })
	}
	codes.serve(200)
	h.step()
	if got := h.rec.all(); len(got) != 1 || got[0].status != StatusPassing || !strings.Contains(got[0].output, codes.URL) {
		t.Fatalf("reported %v, want one passing from the new check", got)
	}

	// A TTL check replaced by an active one no longer takes heartbeats,
	// and its TTL does not expire.
	h.add(Definition{ID: "t", TTL: time.Second}, StatusPassing)
	h.add(Definition{ID: "t", TCP: "127.0.0.1:1", Interval: time.Hour}, StatusPassing)
	if err := h.r.Heartbeat("t", StatusPassing, ""); !errors.Is(err, ErrNotTTL) {
		t.Fatalf("Heartbeat = %v, want ErrNotTTL", err)
	}
	before := h.rec.count()
	h.clock.Advance(2 * time.Second)
	for _, u := range h.rec.all()[before:] {
		if u.output == TTLExpiredOutput {
			t.Fatalf("the replaced TTL check expired: %v", u)
		}
	}
}

// step0 fires the first run of the one active check and returns without
// waiting for it.
func (h *harness) step0() {
	h.t.Helper()
	h.clock.waitPending(h.t, 1)
	h.clock.advanceToNext(h.t)
}

// TestShutdown: Shutdown stops every kind of check, kills a hanging
// script with its child, aborts a hung request, waits for every
// goroutine, and nothing is reported after it returns.
func TestShutdown(t *testing.T) {
	goroutineBaseline(t)
	srv := newSlowServer(t)
	l, _ := listen(t, "127.0.0.1:0")
	pidFile := filepath.Join(t.TempDir(), "pids")
	script := hangingScript(t, pidFile)
	src := newFakeAlias()
	h := newHarness(t, func(c *Config) { c.Alias = src })
	for _, def := range []Definition{
		{ID: "script", Args: []string{"/bin/sh", script}, Interval: time.Second, Timeout: time.Hour},
		{ID: "http", HTTP: srv.URL, Interval: time.Second, Timeout: time.Hour},
		{ID: "tcp", TCP: l.Addr().String(), Interval: time.Hour},
		{ID: "ttl", TTL: time.Hour},
		{ID: "alias", AliasService: "web"},
	} {
		h.add(def, StatusPassing)
	}
	h.clock.waitPending(t, 4) // script, http, tcp, ttl
	h.clock.Advance(time.Second)
	testkit.Eventually(t, waitTimeout, "the request", func() bool { return srv.arrived.Load() == 1 })
	testkit.Eventually(t, waitTimeout, "the script", func() bool {
		b, _ := os.ReadFile(pidFile)
		return len(strings.Fields(string(b))) == 2
	})
	testkit.Eventually(t, waitTimeout, "the alias check to ask", func() bool { return len(src.callLog()) == 1 })

	start := time.Now()
	if err := h.r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("Shutdown with a hung script and a hung request took %s", took)
	if took > 10*time.Second {
		t.Fatalf("Shutdown took %s", took)
	}
	n := h.rec.count()
	for _, pid := range readPIDs(t, pidFile) {
		testkit.Eventually(t, waitTimeout, "process "+strconv.Itoa(pid)+" to be gone", func() bool { return processGone(pid) })
	}
	if srv.aborted.Load() != 1 {
		testkit.Eventually(t, waitTimeout, "the request to be aborted", func() bool { return srv.aborted.Load() == 1 })
	}
	h.clock.Advance(2 * time.Hour)
	if got := h.rec.all()[n:]; len(got) != 0 {
		t.Fatalf("reported after Shutdown: %v", got)
	}
	// The hung checks never finished a run: the cancelled ones report
	// nothing, not even during Shutdown.
	for _, u := range h.rec.all() {
		if u.id != "tcp" {
			t.Errorf("reported %v", u)
		}
	}
	if err := h.r.Shutdown(t.Context()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// stressNotifier fails the test if a check reports what it no longer
// may: anything after Remove returned, or a TTL expiry after Add replaced
// the TTL check with a TCP one.
type stressNotifier struct {
	t     *testing.T
	state sync.Map // id → *atomic.Int32
	calls atomic.Int64
	tcp   sync.Map // id → *atomic.Int64: reports of a TCP run
}

const (
	stateAny int32 = iota
	stateTCPOnly
	stateRemoved
)

func (n *stressNotifier) UpdateCheck(id, status, output string) {
	n.calls.Add(1)
	if strings.HasPrefix(output, "TCP connect") {
		v, _ := n.tcp.Load(id)
		v.(*atomic.Int64).Add(1)
	}
	v, _ := n.state.Load(id)
	switch st := v.(*atomic.Int32).Load(); {
	case st == stateRemoved:
		n.t.Errorf("%s reported %s: %q after Remove returned", id, status, output)
	case st == stateTCPOnly && output == TTLExpiredOutput:
		n.t.Errorf("%s: the replaced TTL check reported after Add returned", id)
	}
}

// TestConcurrentUse hammers Add, Heartbeat and Remove from many
// goroutines on the wall clock, with checks that report every
// millisecond, then shuts down; -race checks the locking and the
// notifier checks the ordering guarantees.
func TestConcurrentUse(t *testing.T) {
	goroutineBaseline(t)
	l, _ := listen(t, "127.0.0.1:0")
	n := &stressNotifier{t: t}
	r, err := NewRunner(Config{Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 100
	var wg sync.WaitGroup
	for w := range workers {
		id := "c" + strconv.Itoa(w)
		state := new(atomic.Int32)
		n.state.Store(id, state)
		tcpRuns := new(atomic.Int64)
		n.tcp.Store(id, tcpRuns)
		wg.Go(func() {
			for i := range rounds {
				state.Store(stateAny)
				if err := r.Add(Definition{ID: id, TTL: time.Millisecond, FlapThreshold: 2, FlapWindow: time.Millisecond}, ""); err != nil {
					t.Error(err)
					return
				}
				for j := range rand.IntN(5) {
					err := r.Heartbeat(id, []string{StatusPassing, StatusWarning, StatusCritical}[j%3], strconv.Itoa(i))
					if err != nil {
						t.Error(err)
					}
				}
				if err := r.Add(Definition{ID: id, TCP: l.Addr().String(), Interval: time.Millisecond}, ""); err != nil {
					t.Error(err)
					return
				}
				state.Store(stateTCPOnly)
				if i%4 == 0 {
					// Let it run, so Remove and Add meet a check at work.
					runs := tcpRuns.Load()
					testkit.Eventually(t, waitTimeout, id+" to run", func() bool { return tcpRuns.Load() > runs })
				}
				if err := r.Heartbeat(id, StatusPassing, ""); !errors.Is(err, ErrNotTTL) {
					t.Errorf("Heartbeat on a TCP check = %v", err)
				}
				if i%2 == 0 {
					r.Remove(id)
					state.Store(stateRemoved)
				}
				// Another worker's ID, without the bookkeeping: just contention.
				_ = r.Heartbeat("c"+strconv.Itoa((w+1)%workers), StatusPassing, "")
			}
		})
	}
	wg.Wait()
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	n.state.Range(func(_, v any) bool { v.(*atomic.Int32).Store(stateRemoved); return true })
	t.Logf("%d reports during %d rounds of %d workers", n.calls.Load(), rounds, workers)
}

// shutdownNow shuts r down, for benchmarks.
func shutdownNow(b *testing.B, r *Runner) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
}

type nopNotifier struct{}

func (nopNotifier) UpdateCheck(string, string, string) {}

// BenchmarkHeartbeat measures a TTL heartbeat: the timer reset alone
// (unchanged) or with a report (changed).
func BenchmarkHeartbeat(b *testing.B) {
	for _, tc := range []struct {
		name    string
		outputs []string
	}{
		{"unchanged", []string{"ok"}},
		{"changed", []string{"ok", "still ok"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := NewRunner(Config{Notifier: nopNotifier{}})
			if err != nil {
				b.Fatal(err)
			}
			defer shutdownNow(b, r)
			if err := r.Add(Definition{ID: "ttl", TTL: time.Hour}, ""); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := r.Heartbeat("ttl", StatusPassing, tc.outputs[i%len(tc.outputs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkRunnerAdd measures Add: a new TTL check, a new active check
// (a goroutine waiting for its first run), and the replacement of an
// active check.
func BenchmarkRunnerAdd(b *testing.B) {
	for _, tc := range []struct {
		name    string
		def     Definition
		sameID  bool
		minSize int
	}{
		{name: "ttl", def: Definition{TTL: time.Hour}},
		{name: "tcp", def: Definition{TCP: "127.0.0.1:1", Interval: time.Hour}},
		{name: "tcp-replace", def: Definition{TCP: "127.0.0.1:1", Interval: time.Hour}, sameID: true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := NewRunner(Config{Notifier: nopNotifier{}})
			if err != nil {
				b.Fatal(err)
			}
			defer shutdownNow(b, r)
			b.ReportAllocs()
			i := 0
			def := tc.def
			for b.Loop() {
				def.ID = "c"
				if !tc.sameID {
					def.ID = "c" + strconv.Itoa(i)
				}
				if err := r.Add(def, StatusPassing); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
