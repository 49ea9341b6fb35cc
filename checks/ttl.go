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

// Notifier receives a check's new status and output. It is called without
// any lock of the check held, from the goroutine that caused the change
// (a timer's, or the caller of SetStatus).
type Notifier interface {
	UpdateCheck(checkID, status, output string)
}

// Clock is the time source of timers, so tests can steer them.
type Clock interface {
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer started by a Clock.
type Timer interface {
	Stop() bool
}

type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// TTL is a heartbeat check: the application reports its status with
// SetStatus, and a TTL without a report turns the check critical.
// Its methods are safe for concurrent use.
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
		clock = RealClock
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
