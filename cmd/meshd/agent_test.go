package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// fakeAgent is a stopper that runs the given functions; calls hears the
// name of each call as it starts.
type fakeAgent struct {
	leave, shutdown func(context.Context) error
	calls           chan string
}

func newFakeAgent(leave, shutdown func(context.Context) error) *fakeAgent {
	return &fakeAgent{leave: leave, shutdown: shutdown, calls: make(chan string, 2)}
}

func (f *fakeAgent) Leave(ctx context.Context) error {
	f.calls <- "leave"
	return f.leave(ctx)
}

func (f *fakeAgent) Shutdown(ctx context.Context) error {
	f.calls <- "shutdown"
	return f.shutdown(ctx)
}

func returns(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

func TestStop(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name              string
		leave             bool
		leaveErr, shutErr error
		wantCode          int
		wantCalls         []string
	}{
		{"shutdown only", false, nil, nil, 0, []string{"shutdown"}},
		{"leave then shutdown", true, nil, nil, 0, []string{"leave", "shutdown"}},
		{"a failed leave still shuts down", true, boom, nil, 0, []string{"leave", "shutdown"}},
		{"a failed shutdown", false, nil, boom, 1, []string{"shutdown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newFakeAgent(returns(tc.leaveErr), returns(tc.shutErr))
			code := stop(a, tc.leave, make(chan os.Signal), logger)
			close(a.calls)
			var got []string
			for c := range a.calls {
				got = append(got, c)
			}
			if code != tc.wantCode || !slices.Equal(got, tc.wantCalls) {
				t.Fatalf("stop = %d, calls %v; want %d, %v", code, got, tc.wantCode, tc.wantCalls)
			}
		})
	}
}

// TestStopSecondSignal checks that a signal ends the stop at once, both
// while the agent leaves and while it shuts down.
func TestStopSecondSignal(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	for _, blockedIn := range []string{"leave", "shutdown"} {
		t.Run("during "+blockedIn, func(t *testing.T) {
			// The blocked call returns only once stop gives up and cancels
			// its context, as a leave or shutdown waiting on unreachable
			// servers would not return before shutdownTimeout.
			stuck := func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}
			leave, shutdown := returns(nil), returns(nil)
			if blockedIn == "leave" {
				leave = stuck
			} else {
				shutdown = stuck
			}
			shutReturned := make(chan struct{})
			a := newFakeAgent(leave, func(ctx context.Context) error {
				defer close(shutReturned)
				return shutdown(ctx)
			})
			sigCh := make(chan os.Signal, 1)
			code := make(chan int, 1)
			go func() { code <- stop(a, true, sigCh, logger) }()
			for c := range a.calls {
				if c == blockedIn {
					break
				}
			}
			sigCh <- syscall.SIGINT
			select {
			case c := <-code:
				if c != 1 {
					t.Fatalf("stop = %d after a second signal, want 1", c)
				}
			case <-time.After(shutdownTimeout / 2):
				t.Fatal("a second signal did not end the stop")
			}
			<-shutReturned // the stuck call has seen the cancel
		})
	}
}

func TestServerGC(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		server bool
		env    map[string]string
		want   int
		set    bool
	}{
		{server: true, want: serverGCPercent, set: true},
		{server: false},
		{server: true, env: map[string]string{"GOGC": "200"}},
		{server: true, env: map[string]string{"GOMEMLIMIT": "1GiB"}},
	} {
		got, set := serverGC(tc.server, env(tc.env))
		if got != tc.want || set != tc.set {
			t.Errorf("serverGC(%v, %v) = %d, %v; want %d, %v", tc.server, tc.env, got, set, tc.want, tc.set)
		}
	}
}
