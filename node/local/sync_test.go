package local

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pushEach keeps up to pushParallel pushes in flight, no more, and pushes
// every item once.
func TestPushEachBoundsConcurrency(t *testing.T) {
	items := make([]int, 5*pushParallel)
	for i := range items {
		items[i] = i
	}
	var (
		inFlight, most atomic.Int64
		mu             sync.Mutex
		seen           = map[int]int{}
		release        = make(chan struct{})
	)
	done := make(chan error, 1)
	go func() {
		done <- pushEach(context.Background(), items, func(_ context.Context, i int) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			<-release
			return nil
		})
	}()
	// The first pushParallel block until released: all are in flight.
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < pushParallel {
		if time.Now().After(deadline) {
			t.Fatalf("%d pushes in flight, want %d", inFlight.Load(), pushParallel)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := most.Load(); m != pushParallel {
		t.Errorf("at most %d in flight, want exactly %d", m, pushParallel)
	}
	for _, i := range items {
		if seen[i] != 1 {
			t.Errorf("item %d pushed %d times", i, seen[i])
		}
	}
}

// The first error is returned, and no push starts after it.
func TestPushEachStopsAtFirstError(t *testing.T) {
	items := make([]int, 10*pushParallel)
	boom := errors.New("boom")
	var started atomic.Int64
	err := pushEach(context.Background(), items, func(ctx context.Context, _ int) error {
		if started.Add(1) == 1 {
			return boom
		}
		<-ctx.Done() // the others end when the error cancels them
		return ctx.Err()
	})
	if !errors.Is(err, boom) {
		t.Fatalf("pushEach = %v, want boom", err)
	}
	if n := started.Load(); n > pushParallel {
		t.Fatalf("%d pushes started after the first failed, want at most %d in all", n, pushParallel)
	}
	if err := pushEach(context.Background(), []int(nil), func(context.Context, int) error { return boom }); err != nil {
		t.Fatalf("no items: %v", err)
	}
}
