package checks

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/internal/testkit"
)

// fakeClock is clock.Fake with the waits these tests use.
type fakeClock struct{ *clock.Fake }

var fakeEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{clock.NewFake(fakeEpoch)} }

// advanceToNext moves time to the earliest pending timer and fires it.
func (c *fakeClock) advanceToNext(t *testing.T) time.Duration {
	t.Helper()
	ds := c.Deadlines()
	if len(ds) == 0 {
		t.Fatal("no pending timer")
	}
	c.Advance(ds[0])
	return ds[0]
}

// waitPending waits until at least n timers are pending.
func (c *fakeClock) waitPending(t *testing.T, n int) {
	t.Helper()
	testkit.Eventually(t, waitTimeout, fmt.Sprintf("%d pending timers", n), func() bool { return c.Pending() >= n })
}

// waitTimeout bounds every wait of the tests: long, because the tests run
// under -race on loaded machines; a wait that succeeds returns at once.
const waitTimeout = 20 * time.Second

type update struct{ id, status, output string }

func (u update) String() string { return u.id + " " + u.status + ": " + u.output }

// recorder is a Notifier that remembers every call.
type recorder struct {
	mu      sync.Mutex
	updates []update
}

func (r *recorder) UpdateCheck(id, status, output string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, update{id, status, output})
}

func (r *recorder) all() []update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.updates)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

func (r *recorder) last() update {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.updates) == 0 {
		return update{}
	}
	return r.updates[len(r.updates)-1]
}

// lastOf returns the last update of check id.
func (r *recorder) lastOf(id string) (update, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.updates) - 1; i >= 0; i-- {
		if r.updates[i].id == id {
			return r.updates[i], true
		}
	}
	return update{}, false
}

// waitStatus waits until the last update of id has this status.
func (r *recorder) waitStatus(t testing.TB, id, status string) update {
	t.Helper()
	var u update
	testkit.Eventually(t, waitTimeout, id+" "+status, func() bool {
		var ok bool
		u, ok = r.lastOf(id)
		return ok && u.status == status
	})
	return u
}

// statuses returns the statuses of the updates from index from on.
func (r *recorder) statuses(from int) []string {
	var out []string
	for _, u := range r.all()[from:] {
		out = append(out, u.status)
	}
	return out
}

// testLogger sends logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// harness is a Runner on a fake clock with a recorder, shut down when the
// test ends.
type harness struct {
	t     *testing.T
	clock *fakeClock
	rec   *recorder
	r     *Runner
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), rec: &recorder{}}
	cfg := Config{Notifier: h.rec, Clock: h.clock, Logger: testLogger(t), EnableScripts: true}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

func (h *harness) add(def Definition, initial string) {
	h.t.Helper()
	if err := h.r.Add(def, initial); err != nil {
		h.t.Fatalf("add %s: %v", def.ID, err)
	}
}

// step runs the one active check of the harness once: it fires the timer
// the check waits on and waits until the check waits on the clock again,
// so the run, its immediate retry if any, and their reports are over.
func (h *harness) step() {
	h.t.Helper()
	h.clock.waitPending(h.t, 1)
	if n := h.clock.Pending(); n != 1 {
		h.t.Fatalf("%d timers pending, want 1", n)
	}
	h.clock.advanceToNext(h.t)
	h.clock.waitPending(h.t, 1)
}

// processGone reports whether pid has exited (a zombie counts: it runs
// nothing, and in a container nobody may reap it).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	// The state follows the command name in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// goroutineBaseline records the goroutine count and, when the test ends
// (after every other cleanup), waits for it to come back down.
func goroutineBaseline(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		deadline := time.Now().Add(waitTimeout)
		for {
			n = runtime.NumGoroutine()
			if n <= base {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines: %d after the test, %d before", n, base)
				return
			}
			time.Sleep(5 * time.Millisecond) // polling, with a deadline
		}
		t.Logf("goroutines: %d after the test, %d before", n, base)
	})
}
