package checks

import (
	"errors"
	"testing"
	"time"
)

// TestRunnerTTL drives a TTL check of a Runner with the fake clock.
func TestRunnerTTL(t *testing.T) {
	h := newHarness(t, nil)
	h.add(Definition{ID: "ttl", TTL: 10 * time.Second}, StatusPassing)
	if h.clock.Pending() != 1 {
		t.Fatalf("Add did not arm the TTL: %d timers", h.clock.Pending())
	}

	steps := []struct {
		name    string
		advance time.Duration
		beat    *[2]string // status, output
		want    []update   // the updates this step makes
	}{
		{name: "a restored status holds for one TTL", advance: 9 * time.Second},
		{name: "a heartbeat reports", beat: &[2]string{StatusPassing, "ok"},
			want: []update{{"ttl", StatusPassing, "ok"}}},
		{name: "an unchanged heartbeat costs nothing", beat: &[2]string{StatusPassing, "ok"}},
		{name: "and it reset the TTL", advance: 9 * time.Second},
		{name: "expiry", advance: time.Second + time.Nanosecond,
			want: []update{{"ttl", StatusCritical, TTLExpiredOutput}}},
		{name: "no second expiry", advance: time.Hour},
		{name: "fail is critical at once", beat: &[2]string{StatusCritical, "boom"},
			want: []update{{"ttl", StatusCritical, "boom"}}},
		{name: "warning", beat: &[2]string{StatusWarning, "slow"},
			want: []update{{"ttl", StatusWarning, "slow"}}},
		{name: "output-only change", beat: &[2]string{StatusWarning, "slower"},
			want: []update{{"ttl", StatusWarning, "slower"}}},
		{name: "expiry again", advance: 10 * time.Second,
			want: []update{{"ttl", StatusCritical, TTLExpiredOutput}}},
	}
	for _, st := range steps {
		before := h.rec.count()
		if st.beat != nil {
			if err := h.r.Heartbeat("ttl", st.beat[0], st.beat[1]); err != nil {
				t.Fatalf("%s: heartbeat: %v", st.name, err)
			}
		}
		h.clock.Advance(st.advance)
		got := h.rec.all()[before:]
		if len(got) != len(st.want) || (len(got) > 0 && got[0] != st.want[0]) {
			t.Fatalf("%s: updates %v, want %v", st.name, got, st.want)
		}
	}

	// The output of a heartbeat is bounded.
	h.add(Definition{ID: "small", TTL: time.Minute, OutputMaxSize: 4}, "")
	if err := h.r.Heartbeat("small", StatusPassing, "0123456789"); err != nil {
		t.Fatal(err)
	}
	if u := h.rec.last(); u.output != "0123" {
		t.Fatalf("output %q, want it cut to 4 bytes", u.output)
	}
}

func TestHeartbeatErrors(t *testing.T) {
	h := newHarness(t, nil)
	h.add(Definition{ID: "ttl", TTL: time.Minute}, "")
	h.add(Definition{ID: "tcp", TCP: "127.0.0.1:1", Interval: time.Hour}, "")
	h.add(Definition{ID: "gone", TTL: time.Minute}, "")
	h.r.Remove("gone")

	for _, tc := range []struct {
		name, id, status string
		want             error
	}{
		{"ok", "ttl", StatusPassing, nil},
		{"unknown", "nope", StatusPassing, ErrUnknownCheck},
		{"removed", "gone", StatusPassing, ErrUnknownCheck},
		{"not a TTL check", "tcp", StatusPassing, ErrNotTTL},
		{"bad status", "ttl", "ok", ErrInvalidStatus},
		{"empty status", "ttl", "", ErrInvalidStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.r.Heartbeat(tc.id, tc.status, "x"); !errors.Is(err, tc.want) {
				t.Fatalf("Heartbeat(%q, %q) = %v, want %v", tc.id, tc.status, err, tc.want)
			}
		})
	}
	if err := h.r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Heartbeat("ttl", StatusPassing, ""); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Heartbeat after Shutdown = %v, want ErrShutdown", err)
	}
}
