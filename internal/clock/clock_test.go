package clock

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

func TestFake(t *testing.T) {
	epoch := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewFake(epoch)
	var fired []string
	c.AfterFunc(2*time.Second, func() { fired = append(fired, "b") })
	stopped := c.AfterFunc(time.Second, func() { fired = append(fired, "x") })
	c.AfterFunc(time.Second, func() {
		fired = append(fired, "a")
		// Armed from a timer's function, at the time Advance moved to: due
		// within the same Advance.
		c.AfterFunc(0, func() { fired = append(fired, "a2") })
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop reports wrongly")
	}
	if got := c.Deadlines(); !slices.Equal(got, []time.Duration{time.Second, 2 * time.Second}) {
		t.Fatalf("deadlines %v", got)
	}
	if n := c.Advance(1500 * time.Millisecond); n != 2 || !slices.Equal(fired, []string{"a", "a2"}) {
		t.Fatalf("after 1.5 s: %d fired, %v", n, fired)
	}
	if c.Elapsed() != 1500*time.Millisecond || !c.Now().Equal(epoch.Add(1500*time.Millisecond)) {
		t.Fatalf("Elapsed %v, Now %v", c.Elapsed(), c.Now())
	}
	c.Advance(time.Second)
	if !slices.Equal(fired, []string{"a", "a2", "b"}) || c.Pending() != 0 {
		t.Fatalf("fired %v, %d pending", fired, c.Pending())
	}
}

func TestWall(t *testing.T) {
	var c Clock = Wall{}
	done := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Wall.AfterFunc did not fire")
	}
	if time.Since(c.Now()) < 0 {
		t.Fatal("Wall.Now is in the future")
	}
}

// TestSleep: Sleep ends when its clock passes d (true) or ctx ends first
// (false), and leaves no timer behind.
func TestSleep(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	done := make(chan bool, 1)
	go func() { done <- Sleep(context.Background(), c, time.Minute) }()
	testkit.Eventually(t, 10*time.Second, "the sleeper's timer is set", func() bool { return c.Pending() > 0 })
	c.Advance(time.Minute)
	if !<-done {
		t.Fatal("Sleep on a clock that passed d returned false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, c, time.Hour) {
		t.Fatal("Sleep with an ended ctx returned true")
	}
	if n := c.Pending(); n != 0 {
		t.Fatalf("%d timers left behind", n)
	}
}

// TestTicker: a Ticker ticks once per period of its clock, drops ticks
// nobody took, and stops.
func TestTicker(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	tk := NewTicker(c, time.Second)
	c.Advance(time.Second)
	select {
	case got := <-tk.C:
		if got != time.Unix(1, 0) {
			t.Fatalf("tick at %v", got)
		}
	default:
		t.Fatal("no tick after a period")
	}
	c.Advance(time.Second)
	c.Advance(time.Second) // not taken: dropped
	<-tk.C
	select {
	case <-tk.C:
		t.Fatal("a tick nobody took was queued")
	default:
	}
	tk.Stop()
	c.Advance(time.Minute)
	select {
	case <-tk.C:
		t.Fatal("a tick after Stop")
	default:
	}
	if n := c.Pending(); n != 0 {
		t.Fatalf("%d timers left after Stop", n)
	}
	ch, _ := After(c, time.Second)
	c.Advance(time.Second)
	if got := <-ch; got != time.Unix(64, 0) {
		t.Fatalf("After fired at %v", got)
	}
}
