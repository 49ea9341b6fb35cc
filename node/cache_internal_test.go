package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/rpc"
)

// fakeCatalog answers health/service queries like a server's blocking
// query: at once when the caller's index is behind, else when the next
// change comes (or the caller gives up).
type fakeCatalog struct {
	mu      sync.Mutex
	index   uint64
	nodes   []catalog.CheckServiceNode
	err     error
	changed chan struct{}
	calls   int
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{index: 5, changed: make(chan struct{}), nodes: []catalog.CheckServiceNode{{
		Node: &catalog.Node{Node: "n1"}, Service: &catalog.Service{ID: "web1", Service: "web"},
	}}}
}

func (f *fakeCatalog) fetch(ctx context.Context, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error) {
	f.mu.Lock()
	f.calls++
	for f.err == nil && q.MinIndex >= f.index {
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return &rpc.CheckServiceNodesResponse{QueryMeta: rpc.QueryMeta{Index: f.index}, Nodes: f.nodes}, nil
}

// update changes the answer (or makes queries fail) and wakes watchers.
func (f *fakeCatalog) update(nodes []catalog.CheckServiceNode, err error) {
	f.mu.Lock()
	f.index++
	f.nodes, f.err = nodes, err
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeCatalog) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func testCache(t *testing.T, f *fakeCatalog) *serviceCache {
	c := newServiceCache(f.fetch, 0, slog.New(slog.DiscardHandler))
	t.Cleanup(c.close)
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServiceCacheHitMissAndUpdate(t *testing.T) {
	f := newFakeCatalog()
	c := testCache(t, f)
	key := newServiceKey("dc1", "Web", []string{"b", "A"}, false)
	if key != newServiceKey("DC1", "web", []string{"a", "B"}, false) {
		t.Fatal("keys differ by case or tag order")
	}
	ans, hit, err := c.get(context.Background(), key)
	if err != nil || hit || len(ans.nodes) != 1 || ans.meta.Index != 5 {
		t.Fatalf("first get: %+v hit=%v err=%v", ans, hit, err)
	}
	for range 100 {
		again, hit, err := c.get(context.Background(), key)
		if err != nil || !hit || again != ans {
			t.Fatalf("repeat get: hit=%v err=%v same=%v", hit, err, again == ans)
		}
	}
	// One query answered, one blocking: no query per lookup.
	waitFor(t, "the watch to block", func() bool { return f.callCount() == 2 })
	if !ans.fresh() {
		t.Fatal("answer stale before any change")
	}
	f.update(nil, nil)
	waitFor(t, "the change to reach the cache", func() bool { return !ans.fresh() })
	next, hit, err := c.get(context.Background(), key)
	if err != nil || !hit || len(next.nodes) != 0 || next.meta.Index != 6 {
		t.Fatalf("after change: %+v hit=%v err=%v", next, hit, err)
	}
}

// TestServiceCacheServesLastAnswerOnError: servers failing, the last
// answer stays; a key never answered reports the error.
func TestServiceCacheServesLastAnswerOnError(t *testing.T) {
	f := newFakeCatalog()
	c := testCache(t, f)
	key := newServiceKey("dc1", "web", nil, false)
	ans, _, err := c.get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("no server answered")
	f.update(nil, boom)
	waitFor(t, "the watch to retry", func() bool { return f.callCount() >= 4 })
	got, hit, err := c.get(context.Background(), key)
	if err != nil || !hit || got != ans {
		t.Fatalf("with servers failing: hit=%v err=%v same answer=%v", hit, err, got == ans)
	}
	if _, _, err := c.get(context.Background(), newServiceKey("dc1", "db", nil, false)); !errors.Is(err, boom) {
		t.Fatalf("never-answered key with servers failing: err %v", err)
	}
}

func TestServiceCacheEvicts(t *testing.T) {
	f := newFakeCatalog()
	c := testCache(t, f)
	var (
		mu  sync.Mutex
		now = time.Unix(1000, 0)
	)
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c.entryTTL, c.maxEntries = time.Minute, 2

	a, _, _ := c.get(context.Background(), newServiceKey("dc1", "a", nil, false))
	c.get(context.Background(), newServiceKey("dc1", "b", nil, false))
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	c.get(context.Background(), newServiceKey("dc1", "b", nil, false))
	// Full: a third key pushes out the least recently used, "a".
	c.get(context.Background(), newServiceKey("dc1", "c", nil, false))
	if n := c.size(); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	if a.fresh() {
		t.Fatal("evicted entry's answer still fresh")
	}
	// Idle past the TTL: the watches stop at their next turn.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	f.update(f.nodes, nil) // wake the blocked watches
	waitFor(t, "idle entries to go", func() bool { return c.size() == 0 })
}

// TestServiceCacheClose stops every watch (the cleanup's close would hang
// on a leaked one) and refuses later lookups.
func TestServiceCacheClose(t *testing.T) {
	f := newFakeCatalog()
	c := newServiceCache(f.fetch, 0, slog.New(slog.DiscardHandler))
	for _, s := range []string{"a", "b", "c"} {
		if _, _, err := c.get(context.Background(), newServiceKey("dc1", s, nil, false)); err != nil {
			t.Fatal(err)
		}
	}
	c.close()
	if _, _, err := c.get(context.Background(), newServiceKey("dc1", "a", nil, false)); !errors.Is(err, errCacheClosed) {
		t.Fatalf("get after close: %v", err)
	}
}

// TestServiceCacheFreshCountsAsUse: a reader that only checks fresh (the
// DNS server reusing its records) keeps the entry from going idle.
func TestServiceCacheFreshCountsAsUse(t *testing.T) {
	f := newFakeCatalog()
	c := testCache(t, f)
	var (
		mu  sync.Mutex
		now = time.Unix(1000, 0)
	)
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c.entryTTL = time.Minute

	ans, _, err := c.get(context.Background(), newServiceKey("dc1", "web", nil, false))
	if err != nil {
		t.Fatal(err)
	}
	// Twice the TTL since the get, read through fresh all along.
	for range 4 {
		advance(30 * time.Second)
		if !ans.fresh() {
			t.Fatal("answer went stale while nothing changed")
		}
	}
	// Wake the watch; it checks idleness before its next query.
	calls := f.callCount()
	f.update(f.nodes, nil)
	// An entry found idle stops instead of querying again.
	waitFor(t, "the watch to query again", func() bool { return f.callCount() > calls })
	if c.size() != 1 {
		t.Fatal("entry read through fresh was evicted as idle")
	}
}
