package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultRetryInterval is the wait between RetryJoin attempts when none is
// given (Consul's retry_interval).
const DefaultRetryInterval = 30 * time.Second

// RetryJoin joins p to addrs, retrying every interval (DefaultRetryInterval
// if not positive) until one attempt reaches at least one address, ctx
// ends, or p shuts down or leaves. It is the agent's -retry-join. The
// first attempt is immediate; each attempt blocks up to Config.TCPTimeout
// per unreachable address. No addresses: nothing to do, nil. A nil logger
// means slog.Default(). The error wraps ctx's error (and the last join
// error) or ErrShutdown, ErrLeft, ErrNotStarted.
func RetryJoin(ctx context.Context, p *Pool, addrs []string, interval time.Duration, logger *slog.Logger) error {
	if len(addrs) == 0 {
		return nil
	}
	if interval <= 0 {
		interval = DefaultRetryInterval
	}
	if logger == nil {
		logger = slog.Default()
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("retry join: %w", err)
		}
		n, err := p.Join(addrs)
		if n > 0 {
			logger.Info("retry join succeeded", "joined", n, "attempts", attempt,
				"took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if err == nil {
			err = errors.New("no address reached")
		}
		if errors.Is(err, ErrShutdown) || errors.Is(err, ErrLeft) || errors.Is(err, ErrNotStarted) {
			return fmt.Errorf("retry join: %w", err)
		}
		logger.Warn("retry join failed, will retry", "attempt", attempt, "retry_in", interval, "error", err)
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("retry join: %w; last attempt: %w", ctx.Err(), err)
		case <-p.shutdownCh:
			t.Stop()
			return fmt.Errorf("retry join: %w", ErrShutdown)
		}
	}
}
