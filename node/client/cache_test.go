package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
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
	// refuseBlocking answers blocking queries with ErrTooManyBlocking.
	refuseBlocking bool
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{index: 5, changed: make(chan struct{}), nodes: []catalog.CheckServiceNode{{
		Node: &catalog.Node{Node: "n1"}, Service: &catalog.Service{ID: "web1", Service: "web"},
	}}}
}

func (f *fakeCatalog) fetch(ctx context.Context, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error) {
	f.mu.Lock()
	f.calls++
	if f.refuseBlocking && q.MinIndex > 0 {
		f.mu.Unlock()
		return nil, fmt.Errorf("%w: test", server.ErrTooManyBlocking)
	}
	for f.err == nil && q.MinIndex == f.index { // as a server: until the index differs
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

// goBack answers from an older index from now on, as a server that is
// behind the others does.
func (f *fakeCatalog) goBack(index uint64, nodes []catalog.CheckServiceNode) {
	f.mu.Lock()
	f.index, f.nodes = index, nodes
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeCatalog) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// testCacheConfig is the default cache config.
var testCacheConfig = config.CacheConfig{
	EntryTTL: config.DefaultCacheEntryTTL, MaxEntries: config.DefaultCacheMaxEntries, StaleIfError: config.DefaultCacheStaleIfError,
}

func testCache(t *testing.T, f *fakeCatalog) *Cache {
	c := NewCache(f.fetch, testCacheConfig, 0, slog.New(slog.DiscardHandler), nil)
	t.Cleanup(c.Close)
	return c
}

func TestServiceCacheHitMissAndUpdate(t *testing.T) {
	f := newFakeCatalog()
	c := testCache(t, f)
	key := NewKey("dc1", "Web", []string{"b", "A"}, false)
	if key != NewKey("DC1", "web", []string{"a", "B"}, false) {
		t.Fatal("keys differ by case or tag order")
	}
	ans, hit, err := c.Get(context.Background(), key)
	if err != nil || hit || len(ans.nodes) != 1 || ans.meta.Index != 5 {
		t.Fatalf("first get: %+v hit=%v err=%v", ans, hit, err)
	}
	for range 100 {
		again, hit, err := c.Get(context.Background(), key)
		if err != nil || !hit || again != ans {
			t.Fatalf("repeat get: hit=%v err=%v same=%v", hit, err, again == ans)
		}
	}
	// One query answered, one blocking: no query per lookup.
	testkit.Eventually(t, 10*time.Second, "the watch to block", func() bool { return f.callCount() == 2 })
	if !ans.Fresh() {
		t.Fatal("answer stale before any change")
	}
	f.update(nil, nil)
	testkit.Eventually(t, 10*time.Second, "the change to reach the cache", func() bool { return !ans.Fresh() })
	next, hit, err := c.Get(context.Background(), key)
	if err != nil || !hit || len(next.nodes) != 0 || next.meta.Index != 6 {
		t.Fatalf("after change: %+v hit=%v err=%v", next, hit, err)
	}
}

// TestServiceCacheServesLastAnswerOnError: servers failing, the last
// answer stays; a key never answered reports the error.
func TestServiceCacheServesLastAnswerOnError(t *testing.T) {
	f := newFakeCatalog()
	c := testCache(t, f)
	key := NewKey("dc1", "web", nil, false)
	ans, _, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("no server answered")
	f.update(nil, boom)
	testkit.Eventually(t, 10*time.Second, "the watch to retry", func() bool { return f.callCount() >= 4 })
	got, hit, err := c.Get(context.Background(), key)
	if err != nil || !hit || got != ans {
		t.Fatalf("with servers failing: hit=%v err=%v same answer=%v", hit, err, got == ans)
	}
	if _, _, err := c.Get(context.Background(), NewKey("dc1", "db", nil, false)); !errors.Is(err, boom) {
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

	a, _, _ := c.Get(context.Background(), NewKey("dc1", "a", nil, false))
	c.Get(context.Background(), NewKey("dc1", "b", nil, false))
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	c.Get(context.Background(), NewKey("dc1", "b", nil, false))
	// Full: a third key pushes out the least recently used, "a".
	c.Get(context.Background(), NewKey("dc1", "c", nil, false))
	if n := c.Size(); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	if a.Fresh() {
		t.Fatal("evicted entry's answer still fresh")
	}
	// Idle past the TTL: the watches stop at their next turn.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	f.update(f.nodes, nil) // wake the blocked watches
	testkit.Eventually(t, 10*time.Second, "idle entries to go", func() bool { return c.Size() == 0 })
}

// TestServiceCacheClose stops every watch (the cleanup's close would hang
// on a leaked one) and refuses later lookups.
func TestServiceCacheClose(t *testing.T) {
	f := newFakeCatalog()
	c := NewCache(f.fetch, testCacheConfig, 0, slog.New(slog.DiscardHandler), nil)
	for _, s := range []string{"a", "b", "c"} {
		if _, _, err := c.Get(context.Background(), NewKey("dc1", s, nil, false)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if _, _, err := c.Get(context.Background(), NewKey("dc1", "a", nil, false)); !errors.Is(err, ErrClosed) {
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

	ans, _, err := c.Get(context.Background(), NewKey("dc1", "web", nil, false))
	if err != nil {
		t.Fatal(err)
	}
	// Twice the TTL since the get, read through fresh all along.
	for range 4 {
		advance(30 * time.Second)
		if !ans.Fresh() {
			t.Fatal("answer went stale while nothing changed")
		}
	}
	// Wake the watch; it checks idleness before its next query.
	calls := f.callCount()
	f.update(f.nodes, nil)
	// An entry found idle stops instead of querying again.
	testkit.Eventually(t, 10*time.Second, "the watch to query again", func() bool { return f.callCount() > calls })
	if c.Size() != 1 {
		t.Fatal("entry read through fresh was evicted as idle")
	}
}

// fakeClock is a clock for the cache that only moves when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestServiceCacheStaleLimit: with the servers failing, the last answer
// is served with its age growing, for staleIfError and no longer; once
// they answer again its age is back to zero.
func TestServiceCacheStaleLimit(t *testing.T) {
	f := newFakeCatalog()
	clock := &fakeClock{now: time.Unix(1000, 0)}
	cfg := testCacheConfig
	cfg.StaleIfError = time.Minute
	c := NewCache(f.fetch, cfg, 0, slog.New(slog.DiscardHandler), nil)
	t.Cleanup(c.Close)
	c.now = clock.Now
	key := NewKey("dc1", "web", nil, false)
	ans, _, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if age := ans.entry.age(clock.Now()); age != 0 {
		t.Fatalf("age %v with the watch up, want 0", age)
	}
	boom := errors.New("no server answered")
	f.update(nil, boom)
	testkit.Eventually(t, 10*time.Second, "the watch to fail", func() bool { return ans.entry.failing.Load() })
	clock.advance(40 * time.Second)
	got, hit, err := c.Get(context.Background(), key)
	if err != nil || !hit || got != ans {
		t.Fatalf("40 s unconfirmed: hit=%v err=%v same=%v", hit, err, got == ans)
	}
	if age := ans.entry.age(clock.Now()); age != 40*time.Second {
		t.Fatalf("age %v, want 40s", age)
	}
	if !ans.Fresh() {
		t.Fatal("answer not fresh within stale_if_error")
	}
	clock.advance(21 * time.Second)
	if ans.Fresh() {
		t.Fatal("answer still fresh past stale_if_error")
	}
	if _, _, err := c.Get(context.Background(), key); !errors.Is(err, ErrStale) {
		t.Fatalf("61 s unconfirmed: err %v, want ErrStale", err)
	}
	f.update(f.nodes, nil)
	testkit.Eventually(t, 10*time.Second, "the watch to recover", func() bool { return !ans.entry.failing.Load() })
	if got, _, err := c.Get(context.Background(), key); err != nil || got.entry.age(clock.Now()) != 0 {
		t.Fatalf("after recovery: err %v", err)
	}
}

// TestServiceCacheHoldsBackOlderAnswers: when the watch's server is
// replaced by one that is behind (an older index), the cache keeps the
// newer answer instead of going back in time; an older index that stays
// (a snapshot restore) is taken after behindHold.
func TestServiceCacheHoldsBackOlderAnswers(t *testing.T) {
	f := newFakeCatalog()
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c := NewCache(f.fetch, testCacheConfig, 0, slog.New(slog.DiscardHandler), nil)
	t.Cleanup(c.Close)
	c.now = clock.Now
	key := NewKey("dc1", "web", nil, false)
	ans, _, err := c.Get(context.Background(), key)
	if err != nil || len(ans.nodes) != 1 {
		t.Fatalf("first answer %v, %v", ans, err)
	}
	calls := f.callCount()
	f.goBack(1, nil)
	testkit.Eventually(t, 10*time.Second, "the watch to ask again a few times", func() bool { return f.callCount() >= calls+3 })
	got, _, err := c.Get(context.Background(), key)
	if err != nil || got != ans || ans.replaced() {
		t.Fatalf("an older answer replaced the newer one: %v, %v", got, err)
	}
	clock.advance(behindHold + time.Second)
	testkit.Eventually(t, 10*time.Second, "the restored (older) answer to be taken", func() bool {
		got, _, err := c.Get(context.Background(), key)
		return err == nil && len(got.nodes) == 0 && got.meta.Index == 1
	})
	// And it watches on from there.
	f.update(ans.nodes, nil)
	testkit.Eventually(t, 10*time.Second, "the next change", func() bool {
		got, _, err := c.Get(context.Background(), key)
		return err == nil && len(got.nodes) == 1 && got.meta.Index == 2
	})
}

// TestServiceCacheBlocking: local blocking queries wait on the cache for
// the index to move, all of them on the entry's one watch.
func TestServiceCacheBlocking(t *testing.T) {
	f := newFakeCatalog()
	c := testCache(t, f)
	key := NewKey("dc1", "web", nil, false)
	ans, _, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	// An index behind the cache's answers at once.
	if got, hit, err := c.GetBlocking(context.Background(), key, 1, time.Minute); err != nil || !hit || got != ans {
		t.Fatalf("behind: hit=%v err=%v", hit, err)
	}
	// The current index and a short wait: the same answer after the wait.
	start := time.Now()
	if got, _, err := c.GetBlocking(context.Background(), key, ans.meta.Index, 50*time.Millisecond); err != nil || got != ans {
		t.Fatalf("wait over: err=%v same=%v", err, got == ans)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("returned after %v, before the wait", waited)
	}
	testkit.Eventually(t, 10*time.Second, "the watch to block", func() bool { return f.callCount() == 2 })
	const watchers = 50
	results := make(chan uint64, watchers)
	for range watchers {
		go func() {
			got, _, err := c.GetBlocking(context.Background(), key, ans.meta.Index, time.Minute)
			if err != nil {
				results <- 0
				return
			}
			results <- got.meta.Index
		}()
	}
	f.update(nil, nil)
	for range watchers {
		select {
		case idx := <-results:
			if idx != ans.meta.Index+1 {
				t.Fatalf("a watcher returned index %d, want %d", idx, ans.meta.Index+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a blocked watcher was not woken by the change")
		}
	}
	// One more query answered the change, one more blocks: not one each.
	testkit.Eventually(t, 10*time.Second, "the watch to block again", func() bool { return f.callCount() == 3 })
	if n := f.callCount(); n != 3 {
		t.Fatalf("%d upstream queries for %d local watchers", n, watchers)
	}
}

// TestServiceCachePollsWhenRefused: servers that refuse the watch's
// blocking query (the agent holds as many as they allow) get polls
// instead, backing off, and the answer still follows changes.
func TestServiceCachePollsWhenRefused(t *testing.T) {
	f := newFakeCatalog()
	f.refuseBlocking = true
	c := testCache(t, f)
	key := NewKey("dc1", "web", nil, false)
	ans, _, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	f.update(nil, nil)
	testkit.Eventually(t, 10*time.Second, "a poll to pick up the change", func() bool { return !ans.Fresh() })
	got, _, err := c.Get(context.Background(), key)
	if err != nil || len(got.nodes) != 0 || got.entry.failing.Load() {
		t.Fatalf("after the change: %d nodes, failing=%v, %v", len(got.nodes), got.entry.failing.Load(), err)
	}
	// Backing off (100 ms, 200 ms, 400 ms...) between polls: three more
	// rounds of a refused blocking query and a poll take at least three
	// sleeps of 100 ms; a busy loop would take microseconds.
	before, start := f.callCount(), time.Now()
	testkit.Eventually(t, 10*time.Second, "three more rounds", func() bool { return f.callCount() >= before+6 })
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("three rounds while refused in %v: not backing off", took)
	}
}

// BenchmarkServiceCacheHit is a lookup answered from memory: what every
// cached DNS question and HTTP read pays before building its answer.
func BenchmarkServiceCacheHit(b *testing.B) {
	f := newFakeCatalog()
	c := NewCache(f.fetch, testCacheConfig, 0, slog.New(slog.DiscardHandler), nil)
	defer c.Close()
	keys := make([]Key, 1000)
	for i := range keys {
		keys[i] = NewKey("dc1", fmt.Sprintf("svc-%d", i), nil, false)
		if _, _, err := c.Get(context.Background(), keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, hit, err := c.Get(context.Background(), keys[i%len(keys)]); err != nil || !hit {
				b.Fatalf("hit=%v err=%v", hit, err)
			}
			i++
		}
	})
}
