// Package clock is the module's one time source for what tests need to
// steer: schedules, timeouts of state (TTLs, graces), back-offs. Wall is
// the real one; Fake moves only when told. I/O deadlines stay on the wall
// clock.
package clock

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed, unless
	// the returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer started by a Clock.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

// Wall is the real clock.
type Wall struct{}

func (Wall) Now() time.Time                            { return time.Now() }
func (Wall) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Fake is a Clock that moves only when Advance is called; its timers'
// functions run on the goroutine that calls Advance, in deadline order.
// It is safe for concurrent use.
type Fake struct {
	mu     sync.Mutex // guards the fields below
	epoch  time.Time
	now    time.Time
	timers []*fakeTimer // pending ones
}

type fakeTimer struct {
	c  *Fake
	at time.Time
	f  func()
}

// NewFake returns a Fake whose time starts at epoch.
func NewFake(epoch time.Time) *Fake { return &Fake{epoch: epoch, now: epoch} }

// Now implements Clock.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements Clock.
func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}

// Elapsed is the time since the epoch.
func (c *Fake) Elapsed() time.Duration { return c.Now().Sub(c.epoch) }

// Advance moves time forward by d and fires, in deadline order, the
// timers that fall due, those the fired functions arm included. It
// returns how many fired.
func (c *Fake) Advance(d time.Duration) int {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	fired := 0
	for {
		c.mu.Lock()
		slices.SortStableFunc(c.timers, func(a, b *fakeTimer) int { return a.at.Compare(b.at) })
		if len(c.timers) == 0 || c.timers[0].at.After(c.now) {
			c.mu.Unlock()
			return fired
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		c.mu.Unlock()
		t.f()
		fired++
	}
}

// Deadlines returns the pending timers' deadlines, relative to now, in
// order; Pending is how many there are.
func (c *Fake) Deadlines() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.timers {
		ds = append(ds, t.at.Sub(c.now))
	}
	slices.Sort(ds)
	return ds
}

// Pending is how many timers are waiting to fire.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Sleep waits for d on c; false when ctx ended first.
func Sleep(ctx context.Context, c Clock, d time.Duration) bool {
	done := make(chan struct{})
	t := c.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// After returns a channel that receives the time once d has passed on c,
// and the timer, which the caller stops if it stops waiting.
func After(c Clock, d time.Duration) (<-chan time.Time, Timer) {
	ch := make(chan time.Time, 1)
	t := c.AfterFunc(d, func() { ch <- c.Now() })
	return ch, t
}

// Ticker sends the time on C every period d of its clock, as time.Ticker
// does: a tick the receiver has not taken yet is dropped, not queued.
// Stop it when done.
type Ticker struct {
	C <-chan time.Time

	ch    chan time.Time
	clock Clock
	d     time.Duration

	mu      sync.Mutex // guards timer and stopped
	timer   Timer
	stopped bool
}

// NewTicker returns a Ticker on c with period d (> 0).
func NewTicker(c Clock, d time.Duration) *Ticker {
	ch := make(chan time.Time, 1)
	t := &Ticker{C: ch, ch: ch, clock: c, d: d}
	t.mu.Lock()
	t.timer = c.AfterFunc(d, t.fire)
	t.mu.Unlock()
	return t
}

func (t *Ticker) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	select {
	case t.ch <- t.clock.Now():
	default:
	}
	t.timer = t.clock.AfterFunc(t.d, t.fire)
}

// Stop ends the ticks; no tick is sent after it returns, though one
// already sent may wait on C.
func (t *Ticker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.timer.Stop()
}
