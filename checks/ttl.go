package checks

import (
	"sync"
	"time"
)

// Status values, as Consul spells them.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
)

// TTLExpiredOutput is the output of a TTL check whose heartbeat is late.
const TTLExpiredOutput = "TTL expired"

// validStatus reports whether s is one of the three status values.
func validStatus(s string) bool {
	return s == StatusPassing || s == StatusWarning || s == StatusCritical
}

// Notifier receives a check's new status and output.
//
// A Runner calls it from the goroutine that caused the change (a check's
// own goroutine, a timer's, or the caller of Heartbeat), one call at a
// time per check, in the order of the changes, with that check's lock
// held, so that Remove can promise silence once it returns. Hence an
// implementation must not call Add, Remove or Heartbeat for the same check,
// nor Shutdown, and callers must not call those while holding a lock that
// UpdateCheck takes. The stand-alone TTL type calls it without any lock.
type Notifier interface {
	UpdateCheck(checkID, status, output string)
}

// Clock is the time source of schedules, TTLs, flap windows and back-offs,
// so tests can steer them. Probe timeouts bound real I/O and always run on
// the wall clock.
type Clock interface {
	// AfterFunc calls f in its own goroutine once d has elapsed, unless the
	// returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
	// Now is the current time.
	Now() time.Time
}

// Timer is a timer started by a Clock.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
func (realClock) Now() time.Time                            { return time.Now() }

// RealClock is the wall clock. It is stateless; it is a variable only so
// that older callers keep compiling, and nothing in this package assigns it.
var RealClock Clock = realClock{}

// TTL is a stand-alone heartbeat check: the application reports its status
// with SetStatus, and a TTL without a report turns the check critical.
// Unlike a TTL check run by a Runner, every SetStatus is reported, changed
// or not, and no flap damping applies. It is kept for callers that predate
// Runner. Its methods are safe for concurrent use.
type TTL struct {
	checkID  string
	ttl      time.Duration
	notifier Notifier
	clock    Clock

	mu      sync.Mutex // guards the fields below
	timer   Timer
	gen     uint64 // which arming of the timer is current
	stopped bool
}

// NewTTL returns a TTL check; it starts nothing. A nil clock is the wall
// clock.
func NewTTL(checkID string, ttl time.Duration, n Notifier, clock Clock) *TTL {
	if clock == nil {
		clock = realClock{}
	}
	return &TTL{checkID: checkID, ttl: ttl, notifier: n, clock: clock}
}

// Start arms the timer: the check must hear within one TTL.
func (t *TTL) Start() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = false
	t.resetLocked()
}

func (t *TTL) resetLocked() {
	if t.timer != nil {
		t.timer.Stop()
	}
	t.gen++
	gen := t.gen
	t.timer = t.clock.AfterFunc(t.ttl, func() { t.expire(gen) })
}

func (t *TTL) expire(gen uint64) {
	t.mu.Lock()
	// A heartbeat that raced the expiry has re-armed the timer: ignore.
	stale := t.stopped || t.gen != gen
	t.mu.Unlock()
	if !stale {
		t.notifier.UpdateCheck(t.checkID, StatusCritical, TTLExpiredOutput)
	}
}

// SetStatus records a heartbeat: it reports status and output and restarts
// the TTL.
func (t *TTL) SetStatus(status, output string) {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.resetLocked()
	t.mu.Unlock()
	t.notifier.UpdateCheck(t.checkID, status, output)
}

// Stop disarms the timer; no notification follows.
func (t *TTL) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}
