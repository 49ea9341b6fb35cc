// Package inflight tracks the calls or goroutines a component has started
// and not yet finished, so that its Shutdown can refuse new ones and wait
// for the rest. It is the module's one such tracker.
package inflight

import (
	"context"
	"sync"
)

// Tracker counts work in flight until it is closed. The zero value is
// ready to use; it is safe for concurrent use.
type Tracker struct {
	mu     sync.Mutex // guards the fields below
	n      int
	closed bool
	idle   chan struct{} // made by Close; closed once closed and n == 0
}

// Enter records work starting; false once the tracker is closed, when
// the caller must not start it. Every true is matched by one Exit.
func (t *Tracker) Enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

// Exit records work finished.
func (t *Tracker) Exit() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.closed && t.n == 0 {
		close(t.idle)
	}
}

// Close admits no new work. It may be called more than once.
func (t *Tracker) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	t.idle = make(chan struct{})
	if t.n == 0 {
		close(t.idle)
	}
}

// Wait waits until the tracker is closed and the work in flight has
// finished, or ctx ends; it returns at once when the tracker is not
// closed, as there is nothing to wait for yet.
func (t *Tracker) Wait(ctx context.Context) error {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CloseAndWait closes the tracker and waits for the work in flight.
func (t *Tracker) CloseAndWait(ctx context.Context) error {
	t.Close()
	return t.Wait(ctx)
}
