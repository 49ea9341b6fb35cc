package checks

import (
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Duration
	f       func()
	stopped bool
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// advance moves time forward and fires the timers that fall due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && t.at <= c.now {
			t.stopped = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

type recorder struct {
	mu      sync.Mutex
	updates []string
}

func (r *recorder) UpdateCheck(id, status, output string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, status+":"+output)
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.updates) == 0 {
		return ""
	}
	return r.updates[len(r.updates)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

func TestTTL(t *testing.T) {
	clock := &fakeClock{}
	rec := &recorder{}
	ttl := NewTTL("c", 10*time.Second, rec, clock)
	ttl.Start()

	clock.advance(9 * time.Second)
	if rec.count() != 0 {
		t.Fatalf("expired early: %v", rec.updates)
	}
	ttl.SetStatus(StatusPassing, "ok")
	clock.advance(9 * time.Second) // 18 s in, 9 s after the heartbeat
	if rec.last() != "passing:ok" || rec.count() != 1 {
		t.Fatalf("a heartbeat did not reset the TTL: %v", rec.updates)
	}
	clock.advance(2 * time.Second)
	if rec.last() != StatusCritical+":"+TTLExpiredOutput {
		t.Fatalf("no expiry after the TTL: %v", rec.updates)
	}
	ttl.SetStatus(StatusWarning, "slow")
	ttl.Stop()
	clock.advance(time.Minute)
	if rec.last() != "warning:slow" {
		t.Fatalf("a stopped check expired: %v", rec.updates)
	}
	ttl.SetStatus(StatusPassing, "after stop")
	if rec.last() != "warning:slow" {
		t.Fatalf("a stopped check reported: %v", rec.updates)
	}
}

func TestTTLRealClock(t *testing.T) {
	rec := &recorder{}
	ttl := NewTTL("c", 20*time.Millisecond, rec, nil)
	ttl.Start()
	defer ttl.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for rec.last() != StatusCritical+":"+TTLExpiredOutput {
		if time.Now().After(deadline) {
			t.Fatal("TTL never expired on the wall clock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
