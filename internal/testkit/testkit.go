// Package testkit holds what the tests of every package share: one way to
// wait for a condition. Tests run under -race on a loaded 2-core machine,
// so they wait by polling with a deadline, never by sleeping a fixed time.
package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, and fails t when timeout passes
// first, naming what it waited for. It polls often at first and backs off
// to every 10 ms, so a condition that holds soon is seen soon and a long
// wait costs little.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}
