package checks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/meshd/meshd/internal/clock"
)

// maxFlapRecords bounds the status changes a check remembers beyond its
// FlapThreshold; only the newest FlapThreshold+1 decide damping, the rest
// only make the count in the output exact.
const maxFlapRecords = 100

// check is one running check. Active kinds and alias checks run one
// goroutine (run or runAlias); a TTL check has only its timer.
type check struct {
	r    *Runner
	def  Definition // with defaults applied
	kind string

	ctx     context.Context // cancelled by signal
	cancel  context.CancelFunc
	done    chan struct{} // closed when the goroutine exits; nil for TTL
	readyCh chan struct{} // closed by start or signal, whichever is first

	// mu guards the fields below. It is held while the Notifier is called,
	// so a check reports one change at a time, in order, and signal (which
	// takes it) returns only after a report in progress is over.
	mu       sync.Mutex
	prev     *check // the check this one replaced, until it has stopped
	started  bool
	stopped  bool
	ready    bool   // readyCh is closed
	status   string // what the Notifier shows
	output   string
	real     string // the result after thresholds, before flap damping
	realOut  string
	fails    int         // consecutive failed runs
	succs    int         // consecutive passing runs
	retried  bool        // the current failure streak had its immediate retry
	flaps    []time.Time // when the real status changed, oldest first
	flapT    clock.Timer
	flapGen  uint64
	ttlTimer clock.Timer
	ttlGen   uint64
}

func newCheck(r *Runner, def Definition, kind, initial string) *check {
	ctx, cancel := context.WithCancel(context.Background())
	c := &check{
		r: r, def: def, kind: kind,
		ctx: ctx, cancel: cancel,
		readyCh: make(chan struct{}),
		status:  initial,
		real:    initial,
	}
	if kind != KindTTL {
		c.done = make(chan struct{})
	}
	return c
}

// start starts the check unless it was stopped before it could start.
// The check it replaced must have stopped.
func (c *check) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.prev = nil
	c.ready = true
	close(c.readyCh)
	if c.kind == KindTTL {
		c.started = true
		c.armTTLLocked()
		return
	}
	if !c.r.running.Enter() {
		// The runner shut down (and a Remove of this check is under way,
		// or it would have been signalled): it never runs.
		c.stopped = true
		return
	}
	c.started = true
	if c.kind == KindAlias {
		go c.runAlias()
	} else {
		go c.run()
	}
}

// signal stops the check, and the one it replaced, without waiting:
// their probes are cancelled and, once signal returns, they report
// nothing more.
func (c *check) signal() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.cancel()
	if c.ttlTimer != nil {
		c.ttlTimer.Stop()
	}
	if c.flapT != nil {
		c.flapT.Stop()
	}
	if !c.ready {
		c.ready = true
		close(c.readyCh)
	}
	p := c.prev
	c.mu.Unlock()
	if p != nil {
		p.signal()
	}
}

// wait waits until a signalled check, and the one it replaced, have
// stopped their goroutines.
func (c *check) wait() {
	c.mu.Lock()
	started, p := c.started, c.prev
	c.mu.Unlock()
	if p != nil {
		p.wait()
	}
	if started && c.done != nil {
		<-c.done
	}
}

// sleep waits d on the runner's clock; it reports false if the check was
// stopped first.
func (c *check) sleep(d time.Duration) bool {
	firedCh := make(chan struct{})
	t := c.r.afterFunc(d, func() { close(firedCh) })
	select {
	case <-firedCh:
		return true
	case <-c.ctx.Done():
		t.Stop()
		return false
	}
}

// run is the loop of an active check: a first run at a random offset
// within one Interval, so checks added together do not probe together,
// then one run every Interval after the previous one ended.
func (c *check) run() {
	defer c.r.running.Exit()
	defer close(c.done)
	if !c.sleep(rand.N(c.def.Interval)) {
		return
	}
	for {
		ctx, cancel := context.WithTimeout(c.ctx, c.def.Timeout)
		status, output := c.probe(ctx)
		cancel()
		if c.ctx.Err() != nil {
			return // stopped: the result of a cancelled probe means nothing
		}
		if c.r.observe != nil {
			c.r.observe(c.kind, status, false)
		}
		if c.record(status, output) {
			continue
		}
		if !c.sleep(c.def.Interval) {
			return
		}
	}
}

// probe runs one probe of an active check.
func (c *check) probe(ctx context.Context) (status, output string) {
	switch c.kind {
	case KindHTTP:
		return c.probeHTTP(ctx)
	case KindTCP:
		return c.probeTCP(ctx)
	case KindScript:
		return c.probeScript(ctx)
	case KindGRPC:
		return c.probeGRPC(ctx)
	}
	panic("checks: probe of a " + c.kind + " check")
}

// record applies the thresholds to the result of one run and reports
// what changed. It returns true when the run should be retried at once:
// the first failure of a streak that has not reached
// FailuresBeforeCritical.
//
// A result only changes the status once its threshold is reached, but
// one with the status the check already has updates the output at once
// (it contradicts nothing). A warning is reported at once and resets
// both counters: it is neither a failure to confirm nor a success on the
// way back to passing.
func (c *check) record(status, output string) (retry bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	switch status {
	case StatusPassing:
		c.fails, c.retried = 0, false
		c.succs++
		if c.succs < c.def.SuccessBeforePassing && c.real != StatusPassing {
			c.r.logger.Debug("check passed but has not reached its success threshold",
				"check", c.def.ID, "successes", c.succs, "threshold", c.def.SuccessBeforePassing)
			return false
		}
	case StatusWarning:
		c.fails, c.succs, c.retried = 0, 0, false
	default:
		c.succs = 0
		c.fails++
		if c.fails < c.def.FailuresBeforeCritical {
			retry = !c.retried
			c.retried = true
			if c.real != StatusCritical {
				c.r.logger.Debug("check failed but has not reached its failure threshold",
					"check", c.def.ID, "failures", c.fails, "threshold", c.def.FailuresBeforeCritical,
					"retry", retry, "output", output)
				return retry
			}
		}
	}
	c.applyLocked(status, output)
	return retry
}

// heartbeat records a TTL check's heartbeat and restarts its TTL.
func (c *check) heartbeat(status, output string) error {
	<-c.readyCh // a replaced check stops before its successor takes reports
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrUnknownCheck
	}
	c.armTTLLocked()
	c.applyLocked(status, cutOutput(output, c.def.OutputMaxSize))
	return nil
}

func (c *check) armTTLLocked() {
	if c.ttlTimer != nil {
		c.ttlTimer.Stop()
	}
	c.ttlGen++
	gen := c.ttlGen
	c.ttlTimer = c.r.afterFunc(c.def.TTL, func() { c.expireTTL(gen) })
}

func (c *check) expireTTL(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A heartbeat that raced the expiry has re-armed the timer: ignore.
	if c.stopped || gen != c.ttlGen {
		return
	}
	c.ttlTimer = nil
	c.applyLocked(StatusCritical, TTLExpiredOutput)
}

// applyLocked takes a result that passed the thresholds: it records a
// status change for flap damping, then reports what the Notifier should
// show if that changed.
func (c *check) applyLocked(status, output string) {
	if c.def.FlapThreshold > 0 && status != c.real {
		c.flaps = append(c.flaps, c.r.clock.Now())
		if over := len(c.flaps) - (c.def.FlapThreshold + 1 + maxFlapRecords); over > 0 {
			c.flaps = append(c.flaps[:0], c.flaps[over:]...)
		}
	}
	c.real, c.realOut = status, output
	c.showLocked()
}

// showLocked reports the real result, or holds the check critical while
// it flaps.
func (c *check) showLocked() {
	status, output := c.real, c.realOut
	if n := c.flapCountLocked(); n > c.def.FlapThreshold && c.def.FlapThreshold > 0 {
		status = StatusCritical
		output = fmt.Sprintf("flapping: %d status changes in %s; held critical. Last result: %s: %s",
			n, c.def.FlapWindow, c.real, c.realOut)
		c.armFlapTimerLocked()
	}
	if status == c.status && output == c.output {
		return
	}
	if status != c.status {
		c.r.logger.Info("check status changed", "check", c.def.ID, "from", c.status, "to", status, "output", output)
		if c.r.observe != nil {
			c.r.observe(c.kind, status, true)
		}
	}
	c.status, c.output = status, output
	c.r.notifier.UpdateCheck(c.def.ID, status, output)
}

// flapCountLocked forgets the status changes that left the window and
// counts the rest.
func (c *check) flapCountLocked() int {
	if len(c.flaps) == 0 {
		return 0
	}
	cutoff := c.r.clock.Now().Add(-c.def.FlapWindow)
	i := 0
	for i < len(c.flaps) && !c.flaps[i].After(cutoff) {
		i++
	}
	if i > 0 {
		c.flaps = append(c.flaps[:0], c.flaps[i:]...)
	}
	return len(c.flaps)
}

// armFlapTimerLocked wakes the check when enough status changes have left
// the window for the count to fall to FlapThreshold, so a check that
// calmed down is released even if it reports nothing new (a TTL check).
func (c *check) armFlapTimerLocked() {
	if c.flapT != nil {
		c.flapT.Stop()
	}
	at := c.flaps[len(c.flaps)-c.def.FlapThreshold-1].Add(c.def.FlapWindow)
	c.flapGen++
	gen := c.flapGen
	c.flapT = c.r.afterFunc(at.Sub(c.r.clock.Now()), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.stopped || gen != c.flapGen {
			return
		}
		c.flapT = nil
		c.showLocked()
	})
}

// cutOutput returns at most n bytes of s, not splitting a UTF-8
// sequence.
func cutOutput(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return trimPartialRune(s[:n])
}

// trimPartialRune drops a UTF-8 sequence cut short at the end of s, left
// by a cut at a byte count.
func trimPartialRune(s string) string {
	for i := len(s) - 1; i >= 0 && i > len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				return s[:i]
			}
			break
		}
	}
	return s
}
