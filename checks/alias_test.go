package checks

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

type aliasAnswer struct {
	status, output string
	index          uint64
	err            error
}

// fakeAlias is an AliasSource whose answers the test hands out one by
// one; each call blocks until the next answer or its context ends.
type fakeAlias struct {
	answerCh chan aliasAnswer
	mu       sync.Mutex
	calls    []string // "node/service@lastIndex"
}

func newFakeAlias() *fakeAlias { return &fakeAlias{answerCh: make(chan aliasAnswer)} }

func (f *fakeAlias) AliasHealth(ctx context.Context, node, service string, last uint64) (string, string, uint64, error) {
	f.mu.Lock()
	f.calls = append(f.calls, node+"/"+service+"@"+strconv.FormatUint(last, 10))
	f.mu.Unlock()
	select {
	case a := <-f.answerCh:
		return a.status, a.output, a.index, a.err
	case <-ctx.Done():
		return "", "", 0, ctx.Err()
	}
}

func (f *fakeAlias) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func TestAlias(t *testing.T) {
	src := newFakeAlias()
	h := newHarness(t, func(c *Config) { c.Alias = src })
	h.add(Definition{ID: "a", AliasService: "web-1", AliasNode: "n2"}, StatusPassing)

	answer := func(a aliasAnswer) {
		t.Helper()
		select {
		case src.answerCh <- a:
		case <-time.After(waitTimeout):
			t.Fatal("the alias check stopped asking")
		}
	}
	// waitCalls waits until the check made n calls (the last one blocked
	// or about to), so what it did with the answers before is reported.
	waitCalls := func(n int) {
		t.Helper()
		testkit.Eventually(t, waitTimeout, "alias calls", func() bool { return len(src.callLog()) >= n })
	}

	answer(aliasAnswer{StatusCritical, "web-1 is down", 7, nil})
	waitCalls(2)
	if u := h.rec.last(); u.status != StatusCritical || u.output != "web-1 is down" {
		t.Fatalf("reported %v", u)
	}
	answer(aliasAnswer{StatusPassing, "all checks passing", 9, nil})
	waitCalls(3)
	if u := h.rec.last(); u.status != StatusPassing {
		t.Fatalf("reported %v", u)
	}

	// Two errors in a row are waited out with a back-off; the third is
	// reported.
	before := h.rec.count()
	boom := errors.New("no leader")
	for i := range aliasErrorsBeforeAlarm {
		answer(aliasAnswer{err: boom})
		h.clock.waitPending(t, 1) // backing off
		if i < aliasErrorsBeforeAlarm-1 && h.rec.count() != before {
			t.Fatalf("error %d reported: %v", i+1, h.rec.all()[before:])
		}
		if d := h.clock.Deadlines()[0]; d != aliasBackoffMin<<i {
			t.Fatalf("back-off %s after error %d, want %s", d, i+1, aliasBackoffMin<<i)
		}
		h.clock.advanceToNext(t)
	}
	if u := h.rec.last(); u.status != StatusCritical || u.output != "alias: no leader" {
		t.Fatalf("persistent error reported as %v", u)
	}
	answer(aliasAnswer{StatusWarning, "slow", 10, nil})
	waitCalls(3 + aliasErrorsBeforeAlarm + 1)
	if u := h.rec.last(); u.status != StatusWarning || u.output != "slow" {
		t.Fatalf("reported %v", u)
	}

	want := []string{"n2/web-1@0", "n2/web-1@7", "n2/web-1@9", "n2/web-1@9", "n2/web-1@9", "n2/web-1@9", "n2/web-1@10"}
	if got := src.callLog(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}

	// Remove cancels the blocked call and reports nothing more.
	n := h.rec.count()
	h.r.Remove("a")
	select {
	case src.answerCh <- aliasAnswer{StatusCritical, "late", 11, nil}:
		t.Fatal("the removed check still asks")
	default:
	}
	if h.rec.count() != n {
		t.Fatalf("reported after Remove: %v", h.rec.all()[n:])
	}
}
