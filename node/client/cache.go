package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/backoff"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
	"github.com/meshd/meshd/wan"
)

// Agent cache timings.
const (
	// cacheWatchWait is the wait of the watches' blocking queries; the
	// servers add up to 1/16 of jitter.
	cacheWatchWait = 5 * time.Minute
	// cacheRetryMin and cacheRetryMax bound the backoff of a watch whose
	// query fails.
	cacheRetryMin = 100 * time.Millisecond
	cacheRetryMax = 30 * time.Second
	// cacheRetryNoPath bounds it for a datacenter the servers cannot
	// reach, so its answers come back soon after the link does (the
	// servers answer such a query at once, without a WAN call).
	cacheRetryNoPath = 5 * time.Second
	// behindHold is how long answers older than the published one are
	// held back before the watch takes them as a restore.
	behindHold = 2 * time.Second
	// cacheMissWait bounds how long a miss waits for its first answer.
	cacheMissWait = 10 * time.Second
)

// Key is what a cached health/service answer is for.
type Key struct {
	dc      string
	service string // lower-cased
	tags    string // lower-cased, sorted, joined by NUL
	passing bool
}

func NewKey(dc, service string, tags []string, passing bool) Key {
	lower := make([]string, len(tags))
	for i, t := range tags {
		lower[i] = strings.ToLower(t)
	}
	slices.Sort(lower)
	return Key{dc: strings.ToLower(dc), service: strings.ToLower(service), tags: strings.Join(lower, "\x00"), passing: passing}
}

// Answer is one answer held by a cache entry. It is never changed
// once published; changed closes when a newer answer replaces it, or when
// the entry is evicted.
type Answer struct {
	nodes   []catalog.CheckServiceNode
	meta    rpc.QueryMeta
	changed chan struct{}
	// entry is the entry that published it, and now the cache's clock:
	// fresh counts as a use of the entry.
	entry *entry
	now   func() time.Time

	// The HTTP API's JSON of each of nodes, built by the first read that
	// wants it and shared by every later one: an answer is read many
	// times more than it changes, and encoding it was most of the cost
	// of a cached HTTP lookup.
	encodeOnce sync.Once
	encoded    []json.RawMessage
	encodeErr  error
}

// Nodes are the answer's instances; Meta describes it. Neither may be
// changed: every reader of the answer shares them.
func (a *Answer) Nodes() []catalog.CheckServiceNode { return a.nodes }
func (a *Answer) Meta() rpc.QueryMeta               { return a.meta }

// Age is how long the answer has gone unconfirmed by the servers: zero
// while its watch is up.
func (a *Answer) Age() time.Duration { return a.entry.age(a.now()) }

// EncodedNodes returns the JSON of each of a's nodes as present makes
// them, in a's order, built by the first call and shared by every later
// one: every caller passes the same present.
func (a *Answer) EncodedNodes(present func(catalog.CheckServiceNode) any) ([]json.RawMessage, error) {
	a.encodeOnce.Do(func() {
		enc := make([]json.RawMessage, len(a.nodes))
		for i, csn := range a.nodes {
			b, err := json.Marshal(present(csn))
			if err != nil {
				a.encodeErr = err
				return
			}
			enc[i] = b
		}
		a.encoded = enc
	})
	return a.encoded, a.encodeErr
}

// Fresh reports whether no newer answer has replaced a, and the servers
// have not been out of reach for longer than the cache serves stale
// answers. It is how readers that keep what they built from a (DNS)
// check it, so it also counts as a use: an entry read only through fresh
// stays, and stays recent.
func (a *Answer) Fresh() bool {
	now := a.now()
	a.entry.touch(now)
	return !a.replaced() && !a.entry.noPath.Load() && a.entry.age(now) <= a.entry.staleIfError
}

// replaced reports whether a newer answer replaced a, or its entry went.
func (a *Answer) replaced() bool {
	select {
	case <-a.changed:
		return true
	default:
		return false
	}
}

// entry is one watched key: the latest answer, kept current by a
// goroutine running blocking queries against the servers.
type entry struct {
	key Key
	// ready closes once the first answer or the first error is in.
	ready chan struct{}

	// lastUsed is when the entry was last read (UnixNano); atomic, so
	// that reads of a cached answer take no lock.
	lastUsed atomic.Int64
	// stop ends the entry's watch.
	stop context.CancelFunc
	// confirmedAt is when the servers last answered the entry's watch
	// (UnixNano); failing is set while its queries fail. Both are atomic:
	// the age of an answer is read on every lookup.
	confirmedAt atomic.Int64
	failing     atomic.Bool
	// noPath is set while the servers say the entry's datacenter cannot
	// be reached (wan.ErrNoPath, wan.ErrUnreachable): its answer is then
	// not served, however recent, so another datacenter's outage reads as
	// one, and the watch retries at most every cacheRetryNoPath.
	noPath atomic.Bool
	// staleIfError is the cache's: how old an answer may be served.
	staleIfError time.Duration

	mu     sync.Mutex
	answer *Answer // nil until the first answer
	err    error   // the last query error; nil after a success
}

func (e *entry) touch(now time.Time) { e.lastUsed.Store(now.UnixNano()) }

// age is how long the entry's answer has gone unconfirmed: zero while its
// watch is up (a blocking query held on a server, which would return on a
// change), else the time since the servers last answered it.
func (e *entry) age(now time.Time) time.Duration {
	if !e.failing.Load() {
		return 0
	}
	return now.Sub(time.Unix(0, e.confirmedAt.Load()))
}

// publish makes ans e's answer and marks the one it replaces, unless e
// has been removed (its watch's ctx ended): removeLocked cancels before it
// takes e.mu, so checking ctx under e.mu orders the two.
func (e *entry) publish(ctx context.Context, ans *Answer) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	if e.answer != nil {
		close(e.answer.changed)
	}
	e.answer, e.err = ans, nil
	return true
}

// Cache holds health/service answers for a client agent, each kept
// current by one blocking query on the servers however many local lookups
// read it: the servers see one watch per watched service per agent, not
// one query per lookup. Entries nobody has read in entryTTL stop watching
// and go; at most maxEntries are kept, and a new one replaces the least
// recently used of a random sample of evictSample entries (an approximate
// LRU that needs no lock to record a read).
type Cache struct {
	fetch    func(ctx context.Context, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error)
	logger   *slog.Logger
	observe  func(hit bool) // hears of each lookup
	maxStale time.Duration  // of the watches' reads; 0: no bound
	// entryTTL, maxEntries and staleIfError are the cache config's.
	entryTTL     time.Duration
	maxEntries   int
	staleIfError time.Duration
	now          func() time.Time

	// ctx ends every watch; wg counts them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	entries map[Key]*entry
	closed  bool
}

// evictSample is how many entries a full cache compares to pick the one
// to evict.
const evictSample = 16

// NewCache returns a cache that fetches with fetch; the watches' reads
// are stale ones bounded by maxStale (0: no bound). observe, when not
// nil, hears of each lookup: a hit or a miss.
func NewCache(fetch func(context.Context, *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, error), cfg config.CacheConfig,
	maxStale time.Duration, logger *slog.Logger, observe func(hit bool)) *Cache {
	ctx, cancel := context.WithCancel(context.Background())
	if observe == nil {
		observe = func(bool) {}
	}
	return &Cache{
		fetch: fetch, logger: logger, maxStale: maxStale, observe: observe,
		entryTTL: cfg.EntryTTL, maxEntries: cfg.MaxEntries, staleIfError: cfg.StaleIfError,
		now: time.Now, ctx: ctx, cancel: cancel, entries: make(map[Key]*entry),
	}
}

var (
	// ErrClosed is returned by lookups after close.
	ErrClosed = errors.New("agent cache closed")
	// ErrStale is returned for an answer the servers have not
	// confirmed for longer than the cache serves stale answers.
	ErrStale = errors.New("agent cache: the servers have not answered")
)

// Get returns the current answer for key, starting a watch on a miss and
// waiting (bounded by ctx and cacheMissWait) for its first answer. hit
// reports whether the answer was there already. A watch whose queries
// fail keeps serving its last answer; with none, the error is returned.
func (c *Cache) Get(ctx context.Context, key Key) (ans *Answer, hit bool, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, ErrClosed
	}
	e, ok := c.entries[key]
	if !ok {
		e = c.startLocked(key)
	}
	c.mu.Unlock()
	if !ok {
		c.observe(false)
	}

	now := c.now()
	e.touch(now)
	e.mu.Lock()
	ans, err = e.answer, e.err
	e.mu.Unlock()
	if ans != nil && e.noPath.Load() && err != nil {
		return nil, false, err
	}
	if ans != nil {
		c.observe(true)
		if age := e.age(now); age > c.staleIfError {
			return nil, false, fmt.Errorf("%w for %v (stale_if_error %v): %v", ErrStale, age.Round(time.Millisecond), c.staleIfError, err)
		}
		return ans, ok, nil
	}
	if ok && err != nil {
		return nil, false, err
	}
	t := time.NewTimer(cacheMissWait)
	defer t.Stop()
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case <-t.C:
		return nil, false, errors.New("agent cache: no answer from the servers in time")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.answer != nil:
		return e.answer, false, nil
	case e.err != nil:
		return nil, false, e.err
	}
	return nil, false, errors.New("agent cache: entry evicted before its first answer")
}

// GetBlocking is get for a blocking query: with minIndex, it waits (up to
// wait, see blockWait) until the answer's index differs from minIndex,
// then answers with what is current. However many local watchers block on
// one key, they share its entry's single watch on the servers.
func (c *Cache) GetBlocking(ctx context.Context, key Key, minIndex uint64, wait time.Duration) (*Answer, bool, error) {
	ans, hit, err := c.Get(ctx, key)
	if err != nil || minIndex == 0 || ans.meta.Index != minIndex {
		return ans, hit, err
	}
	t := time.NewTimer(server.BlockWait(wait))
	defer t.Stop()
	for ans.meta.Index == minIndex {
		select {
		case <-ans.changed:
		case <-t.C:
			ans, _, err = c.Get(ctx, key) // it may have gone too stale meanwhile
			return ans, hit, err
		case <-ctx.Done():
			return nil, hit, ctx.Err()
		}
		if ans, _, err = c.Get(ctx, key); err != nil {
			return nil, hit, err
		}
	}
	return ans, hit, nil
}

// startLocked adds an entry for key and starts its watch, first evicting
// the least recently used of a sample of entries when full. The caller
// holds c.mu.
func (c *Cache) startLocked(key Key) *entry {
	if len(c.entries) >= c.maxEntries {
		var oldest *entry
		n := 0
		for _, e := range c.entries { // map order is random: a random sample
			if oldest == nil || e.lastUsed.Load() < oldest.lastUsed.Load() {
				oldest = e
			}
			if n++; n == evictSample {
				break
			}
		}
		c.removeLocked(oldest)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	e := &entry{key: key, ready: make(chan struct{}), stop: cancel, staleIfError: c.staleIfError}
	e.touch(c.now())
	c.entries[key] = e
	c.wg.Go(func() { c.watch(ctx, e) })
	return e
}

// removeLocked stops e's watch and drops it; readers of its answer see it
// go stale. The caller holds c.mu.
func (c *Cache) removeLocked(e *entry) {
	delete(c.entries, e.key)
	e.stop()
	e.mu.Lock()
	if e.answer != nil && !e.answer.replaced() {
		close(e.answer.changed)
	}
	e.mu.Unlock()
}

// watch keeps e current until ctx ends or nobody has asked for it in
// entryTTL: a blocking query from the last index, again and again.
func (c *Cache) watch(ctx context.Context, e *entry) {
	var (
		index uint64
		retry = backoff.Backoff{Min: cacheRetryMin, Max: cacheRetryMax}
		once  sync.Once
		// poll: the servers refused a blocking query (this agent holds as
		// many as they allow), so the watch polls without one, backing off
		// between polls, until they take one again.
		poll      bool
		pollRetry = backoff.Backoff{Min: cacheRetryMin, Max: cacheRetryMax}
		// behindSince is when a server first answered with an index below
		// the one published (zero: none is).
		behindSince time.Time
		// recheck: the last query failed, so the next one does not block:
		// an answer that has not changed meanwhile would otherwise hold
		// the entry failing until the next change.
		recheck bool
	)
	markReady := func() { once.Do(func() { close(e.ready) }) }
	defer markReady()
	var tags []string
	if e.key.tags != "" {
		tags = strings.Split(e.key.tags, "\x00")
	}
	for ctx.Err() == nil {
		if idle := c.now().Sub(time.Unix(0, e.lastUsed.Load())); idle > c.entryTTL {
			c.mu.Lock()
			if c.entries[e.key] == e {
				c.removeLocked(e)
			}
			c.mu.Unlock()
			return
		}
		q := &rpc.ServiceQuery{
			Service: e.key.service, Tags: tags, PassingOnly: e.key.passing,
			QueryOptions: rpc.QueryOptions{Datacenter: e.key.dc, AllowStale: true, MaxStale: c.maxStale, MinIndex: index, MaxWait: cacheWatchWait},
		}
		if poll || recheck {
			q.MinIndex = 0
		}
		res, err := c.fetch(ctx, q)
		if ctx.Err() != nil {
			return
		}
		if err != nil && q.MinIndex > 0 && errors.Is(err, server.ErrTooManyBlocking) {
			poll = true
			continue
		}
		if err != nil {
			e.mu.Lock()
			e.err = err
			e.mu.Unlock()
			e.failing.Store(true)
			e.noPath.Store(errors.Is(err, wan.ErrNoPath) || errors.Is(err, wan.ErrUnreachable))
			recheck = true
			markReady()
			// A datacenter the servers cannot reach is retried sooner;
			// the cap holds the backoff itself, not just this wait.
			retry.Max = cacheRetryMax
			if e.noPath.Load() {
				retry.Max = cacheRetryNoPath
			}
			wait := retry.Next()
			c.logger.Debug("cache watch failed", "service", e.key.service, "retry_in", wait, "error", err)
			if !clock.Sleep(ctx, clock.Wall{}, wait) {
				return
			}
			continue
		}
		retry.Reset()
		if res.Index < index {
			// An older answer than the one published: a server still
			// catching up (the watch moved to it when the one it used went
			// away), or a snapshot restore. Hold it back and ask again; an
			// index that stays behind for behindHold is a restore, and the
			// watch starts over from it.
			now := c.now()
			if behindSince.IsZero() {
				behindSince = now
			}
			if now.Sub(behindSince) < behindHold {
				if !clock.Sleep(ctx, clock.Wall{}, cacheRetryMin) {
					return
				}
				continue
			}
			index = 0
		}
		behindSince, recheck = time.Time{}, false
		e.mu.Lock()
		e.err = nil
		e.mu.Unlock()
		e.confirmedAt.Store(c.now().UnixNano())
		e.failing.Store(false)
		e.noPath.Store(false)
		if index == 0 || res.Index > index {
			next := &Answer{nodes: res.Nodes, meta: res.QueryMeta, changed: make(chan struct{}), entry: e, now: c.now}
			if !e.publish(ctx, next) {
				return // removed meanwhile
			}
			markReady()
		}
		index = max(res.Index, 1)
		if poll {
			poll = false
			if !clock.Sleep(ctx, clock.Wall{}, pollRetry.Next()) {
				return
			}
		} else if q.MinIndex > 0 {
			pollRetry.Reset() // a blocking query was taken
		}
	}
}

// Close stops every watch and waits for them.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	for _, e := range c.entries {
		c.removeLocked(e)
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// StaleIfError is how old an answer the cache serves while the servers
// do not answer (cache.stale_if_error).
func (c *Cache) StaleIfError() time.Duration { return c.staleIfError }

// Size reports the entries held.
func (c *Cache) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
