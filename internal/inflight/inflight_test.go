package inflight

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	var tr Tracker
	if err := tr.Wait(context.Background()); err != nil {
		t.Fatalf("Wait on an open tracker: %v", err)
	}
	for range 2 {
		if !tr.Enter() {
			t.Fatal("an open tracker refused work")
		}
	}
	tr.Exit()
	tr.Close()
	if tr.Enter() {
		t.Fatal("a closed tracker admitted work")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := tr.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with work in flight = %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.Wait(context.Background()) }()
	tr.Exit()
	if err := <-done; err != nil {
		t.Fatalf("Wait after the last Exit: %v", err)
	}
	tr.Close() // twice is fine
	if err := tr.CloseAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
