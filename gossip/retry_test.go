package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// countingHandler counts records whose message starts with prefix, and
// passes everything on.
type countingHandler struct {
	slog.Handler
	prefix string
	mu     *sync.Mutex
	n      *int
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.mu.Lock()
		*h.n++
		h.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.n
}

func TestRetryJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	port := freePort(t)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	joiner := startNode(t, "joiner")
	failures := countingHandler{Handler: testLogger(t).Handler(), prefix: "retry join failed", mu: &sync.Mutex{}, n: new(int)}

	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	start := time.Now()
	errCh := make(chan error, 1)
	go func() {
		errCh <- RetryJoin(ctx, joiner.Pool, []string{target}, 50*time.Millisecond, slog.New(failures))
	}()

	// Nothing listens there yet: attempts fail and are retried.
	testkit.Eventually(t, convergeTimeout, "two failed join attempts", func() bool { return failures.count() >= 2 })
	select {
	case err := <-errCh:
		t.Fatalf("RetryJoin returned %v with nothing to join", err)
	default:
	}

	// The target appears on that port; the next attempt reaches it.
	startNode(t, "target", func(c *Config) { c.BindPort = port })
	select {
	case err := <-errCh:
		if err != nil {
			t.Fatalf("RetryJoin: %v", err)
		}
	case <-time.After(convergeTimeout):
		t.Fatal("RetryJoin did not return after the target appeared")
	}
	t.Logf("RetryJoin succeeded after %d failed attempts, %v", failures.count(), time.Since(start).Round(time.Millisecond))
	joiner.waitStatus(t, "target", StatusAlive, convergeTimeout)
}

func TestRetryJoinGivesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	nowhere := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startNode(t, "lonely")
	logger := testLogger(t)

	// Bounded by ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := RetryJoin(ctx, p.Pool, []string{nowhere}, 50*time.Millisecond, logger)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last attempt") {
		t.Fatalf("RetryJoin = %v, want DeadlineExceeded with the last join error", err)
	}
	if took > 5*time.Second {
		t.Errorf("RetryJoin took %v past a 300ms ctx", took)
	}
	t.Logf("RetryJoin gave up %v after start (ctx 300ms)", took.Round(time.Millisecond))

	// Nothing to join: done.
	if err := RetryJoin(context.Background(), p.Pool, nil, time.Second, logger); err != nil {
		t.Errorf("RetryJoin(no addrs) = %v", err)
	}

	// Shutdown stops it mid-wait.
	failures := countingHandler{Handler: logger.Handler(), prefix: "retry join failed", mu: &sync.Mutex{}, n: new(int)}
	errCh := make(chan error, 1)
	go func() {
		errCh <- RetryJoin(context.Background(), p.Pool, []string{nowhere}, time.Hour, slog.New(failures))
	}()
	testkit.Eventually(t, convergeTimeout, "a failed attempt", func() bool { return failures.count() >= 1 })
	sctx, scancel := context.WithTimeout(context.Background(), stopTimeout)
	defer scancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errCh:
		if !errors.Is(err, ErrShutdown) {
			t.Errorf("RetryJoin after Shutdown = %v, want ErrShutdown", err)
		}
	case <-time.After(stopTimeout):
		t.Fatal("RetryJoin kept waiting after Shutdown")
	}
}
