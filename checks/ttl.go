package checks

import "time"

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
// UpdateCheck takes.
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

// realClock is the wall clock, the default Clock of a Runner.
type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
func (realClock) Now() time.Time                            { return time.Now() }
