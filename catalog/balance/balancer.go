package balance

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/meshd/meshd/catalog"
)

// Policy is how a Balancer chooses among healthy instances.
type Policy string

// Policies. PolicyWeighted is the default: it spreads load by the instances'
// weights and needs no shared state, so several agents balancing the same
// service do not herd onto one instance.
const (
	// PolicyWeighted picks at random in proportion to each instance's weight
	// (Weights.Passing, or Weights.Warning while warning).
	PolicyWeighted Policy = "weighted"
	// PolicyRoundRobin hands out the instances in turn, ordered by node and
	// service ID, ignoring weights.
	PolicyRoundRobin Policy = "round_robin"
	// PolicyLeastRecent hands out the instance this balancer handed out least
	// recently (never beats any time), ignoring weights.
	PolicyLeastRecent Policy = "least_recent"
	// PolicyNearest picks the instance on the node with the lowest estimated
	// round-trip time from the caller, by weight among equally near ones;
	// instances whose distance is unknown come last. With no distance
	// known at all it is PolicyWeighted.
	PolicyNearest Policy = "nearest"
)

// ParsePolicy reads a policy name; "" is PolicyWeighted.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return PolicyWeighted, nil
	case PolicyWeighted, PolicyRoundRobin, PolicyLeastRecent, PolicyNearest:
		return p, nil
	}
	return "", fmt.Errorf("unknown policy %q (want weighted, round_robin, least_recent or nearest)", s)
}

// Distance estimates the round-trip time from the caller to an instance's
// node; ok is false when it is unknown.
type Distance func(inst *catalog.CheckServiceNode) (rtt time.Duration, ok bool)

// DefaultMaxKeys bounds the keys a Balancer remembers.
const DefaultMaxKeys = 4096

// Balancer keeps what PolicyRoundRobin and PolicyLeastRecent remember between picks,
// per key (the caller's name for one set of candidates: a service with its
// filters). It remembers at most maxKeys keys, forgetting the least
// recently used; a forgotten key starts over, which costs fairness for a
// moment, never correctness. Safe for concurrent use.
type Balancer struct {
	mu    sync.Mutex                        // guards the fields below
	keys  *simplelru.LRU[string, *keyState] // the keys' memories
	clock uint64                            // PolicyLeastRecent's pick counter
}

// keyState is one key's memory.
type keyState struct {
	// next is PolicyRoundRobin's position.
	next uint64
	// last maps an instance (instanceKey) to the clock value of its last
	// PolicyLeastRecent pick.
	last map[string]uint64
}

// New returns a Balancer remembering up to maxKeys keys (DefaultMaxKeys
// when maxKeys <= 0).
func New(maxKeys int) *Balancer {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	keys, err := simplelru.NewLRU[string, *keyState](maxKeys, nil)
	if err != nil {
		panic(fmt.Sprintf("balance: %v", err)) // only for a size <= 0, excluded above
	}
	return &Balancer{keys: keys}
}

// Pick returns the index in insts of the instance policy chooses for key,
// or -1 when insts is empty. insts must be healthy instances; Pick
// neither reorders them nor keeps a reference to them. dist is used by
// PolicyNearest only and may be nil.
func (b *Balancer) Pick(key string, policy Policy, insts []*catalog.CheckServiceNode, dist Distance) int {
	if len(insts) <= 1 {
		return len(insts) - 1
	}
	switch policy {
	case PolicyRoundRobin:
		return b.roundRobin(key, insts)
	case PolicyLeastRecent:
		return b.leastRecent(key, insts)
	case PolicyNearest:
		return nearest(insts, dist)
	}
	return Weighted(insts)
}

// Keys reports how many keys the balancer remembers.
func (b *Balancer) Keys() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keys.Len()
}

// state returns key's memory, created if needed and marked most recently
// used. The caller holds mu.
func (b *Balancer) state(key string) *keyState {
	if ks, ok := b.keys.Get(key); ok {
		return ks
	}
	ks := &keyState{}
	b.keys.Add(key, ks) // forgets the least recently used key when full
	return ks
}

// roundRobin orders the instances by identity, so that the turn moves
// through the same sequence whatever order the catalog returned them in,
// and takes the next one. When the set changes the turn continues from
// the same counter: every instance still comes up once per len(insts)
// picks.
func (b *Balancer) roundRobin(key string, insts []*catalog.CheckServiceNode) int {
	order := make([]int, len(insts))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return compareInstances(insts[x], insts[y]) })
	b.mu.Lock()
	ks := b.state(key)
	n := ks.next
	ks.next++
	b.mu.Unlock()
	return order[n%uint64(len(order))]
}

// leastRecent takes the instance whose last pick is oldest; ties (never
// picked) go to the first in identity order, so a new set is walked in
// turn.
func (b *Balancer) leastRecent(key string, insts []*catalog.CheckServiceNode) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	ks := b.state(key)
	if ks.last == nil {
		ks.last = make(map[string]uint64, len(insts))
	}
	best, bestAt := -1, uint64(math.MaxUint64)
	for i, in := range insts {
		at := ks.last[instanceKey(in)]
		if at < bestAt || (at == bestAt && compareInstances(in, insts[best]) < 0) {
			best, bestAt = i, at
		}
	}
	b.clock++
	ks.last[instanceKey(insts[best])] = b.clock
	// Forget instances that left the set, so the map follows it.
	if len(ks.last) > 2*len(insts) {
		present := make(map[string]bool, len(insts))
		for _, in := range insts {
			present[instanceKey(in)] = true
		}
		for k := range ks.last {
			if !present[k] {
				delete(ks.last, k)
			}
		}
	}
	return best
}

// nearest picks by weight among the instances at the smallest known
// distance; Weighted over all of them when no distance is known.
func nearest(insts []*catalog.CheckServiceNode, dist Distance) int {
	if dist == nil {
		return Weighted(insts)
	}
	var (
		closest []int
		best    time.Duration
	)
	for i, in := range insts {
		d, ok := dist(in)
		if !ok {
			continue
		}
		switch {
		case len(closest) == 0 || d < best:
			closest, best = append(closest[:0], i), d
		case d == best:
			closest = append(closest, i)
		}
	}
	if len(closest) == 0 {
		return Weighted(insts)
	}
	candidates := make([]*catalog.CheckServiceNode, len(closest))
	for j, i := range closest {
		candidates[j] = insts[i]
	}
	return closest[Weighted(candidates)]
}

// instanceKey identifies an instance: its node and service ID.
func instanceKey(in *catalog.CheckServiceNode) string {
	return in.Node.Node + "\x00" + in.Service.ID
}

func compareInstances(x, y *catalog.CheckServiceNode) int {
	return cmp.Or(cmp.Compare(x.Node.Node, y.Node.Node), cmp.Compare(x.Service.ID, y.Service.ID))
}
