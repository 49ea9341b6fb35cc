// Package backoff is the one exponential backoff of the module: every
// retry loop that waits longer after each failure uses it.
package backoff

import "time"

// Backoff is the wait before the next try of something that keeps
// failing: Min after the first failure, doubling after each further one,
// never above Max. The zero value waits 0; it is not safe for concurrent
// use (each retry loop owns its own).
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the wait after one more failure.
func (b *Backoff) Next() time.Duration {
	b.cur = min(max(2*b.cur, b.Min), b.Max)
	return b.cur
}

// Reset starts over after a success: the next failure waits Min.
func (b *Backoff) Reset() { b.cur = 0 }
