package dns

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/meshd/meshd/catalog"
	"github.com/miekg/dns"
)

// ReusingResolver is a Resolver that can tell how long an answer of
// ServiceInstances stays current. The Server then keeps the healthy
// instances it filtered from an answer and reuses them for later questions
// about the same service, tag and datacenter while the answer is fresh,
// without asking the Resolver again: the catalog query, the copying and
// the health filtering happen once per change of the service, not once
// per question.
type ReusingResolver interface {
	Resolver
	// ServiceInstancesFresh is ServiceInstances plus fresh, which reports
	// whether the answer is still what ServiceInstances would return now.
	// A nil fresh means the answer must not be reused. fresh is called on
	// every question that reuses the answer, concurrently: it must be
	// cheap, never block, and once it has returned false keep doing so.
	ServiceInstancesFresh(ctx context.Context, q ServiceLookup) (insts []catalog.CheckServiceNode, fresh func() bool, err error)
}

// maxHealthySets bounds the sets kept: one per service, tag and
// datacenter asked about.
const maxHealthySets = 1 << 16

// healthySet is what a service question needs from the catalog: the
// healthy instances that match its tag, and whether the service asks for
// single answers. It is shared by concurrent questions and never changed
// once built; answers copy insts before shuffling.
type healthySet struct {
	insts  []*catalog.CheckServiceNode
	single bool
	// fresh reports whether the set may still be used; nil: never.
	fresh func() bool

	// built holds the answers built from the set (builtAnswer), guarded
	// for writers by builtMu.
	builtMu sync.Mutex
	built   atomic.Pointer[built]
}

// healthyCache holds healthySets by lookup.
type healthyCache struct {
	mu   sync.RWMutex
	sets map[ServiceLookup]*healthySet
}

func (c *healthyCache) get(k ServiceLookup) *healthySet {
	c.mu.RLock()
	hs := c.sets[k]
	c.mu.RUnlock()
	if hs == nil || !hs.fresh() {
		return nil
	}
	return hs
}

func (c *healthyCache) put(k ServiceLookup, hs *healthySet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sets == nil {
		c.sets = make(map[ServiceLookup]*healthySet)
	}
	if _, ok := c.sets[k]; !ok && len(c.sets) >= maxHealthySets {
		// Full: drop stale sets, or, when all are fresh, any one (Go's
		// map order is random, so that is a random one).
		for key, old := range c.sets {
			if !old.fresh() {
				delete(c.sets, key)
			}
		}
		for key := range c.sets {
			if len(c.sets) < maxHealthySets {
				break
			}
			delete(c.sets, key)
		}
	}
	c.sets[k] = hs
}

// healthy returns the healthy instances for lookup q, from the cache when
// the resolver allows and the set there is fresh.
func (s *Server) healthy(ctx context.Context, q ServiceLookup) (*healthySet, error) {
	rr, reusable := s.resolver.(ReusingResolver)
	if !reusable {
		insts, err := s.resolver.ServiceInstances(ctx, q)
		if err != nil {
			return nil, err
		}
		return s.filterHealthy(q, insts, nil), nil
	}
	if hs := s.cache.get(q); hs != nil {
		return hs, nil
	}
	insts, fresh, err := rr.ServiceInstancesFresh(ctx, q)
	if err != nil {
		return nil, err
	}
	hs := s.filterHealthy(q, insts, fresh)
	if fresh != nil {
		s.cache.put(q, hs)
	}
	return hs, nil
}

// filterHealthy keeps the instances of insts that are healthy (by
// OnlyPassing) and carry q's tag.
func (s *Server) filterHealthy(q ServiceLookup, insts []catalog.CheckServiceNode, fresh func() bool) *healthySet {
	hs := &healthySet{insts: make([]*catalog.CheckServiceNode, 0, len(insts)), fresh: fresh}
	for i := range insts {
		inst := &insts[i]
		if inst.Node == nil || inst.Service == nil || !inst.Healthy(s.cfg.OnlyPassing) {
			continue
		}
		if q.Tag != "" && !inst.Service.HasTag(q.Tag) {
			continue
		}
		hs.single = hs.single || inst.Service.DNS.Single
		hs.insts = append(hs.insts, inst)
	}
	return hs
}

// builtKey names the records built for one question about a healthySet.
// The set fixes the service, tag and datacenter; the owner name, type and
// zone fix the records.
type builtKey struct {
	owner string
	qtype uint16
	zone  *zone
}

// built holds a set's prebuilt answers; replaced whole (copy on write), so
// that readers take no lock.
type built map[builtKey]*prebuilt

// prebuilt is an answer built once from a healthySet: every record in the
// order of the set, and, parallel to answer, the additional record of
// each (nil when none). Additional records shared by several answers (two
// instances on one node) are one RR value. Never changed once built;
// shared by concurrent answers, which copy the slices.
type prebuilt struct {
	answer   []dns.RR
	extra    []dns.RR // nil when no answer has one
	sharedEx bool     // some additional record serves several answers
}

// builtAnswer returns the prebuilt answer to q from hs, building it on
// first use.
func (s *Server) builtAnswer(hs *healthySet, q dns.Question, z *zone, dc string, ttl uint32) *prebuilt {
	k := builtKey{owner: q.Name, qtype: q.Qtype, zone: z}
	if m := hs.built.Load(); m != nil {
		if pb := (*m)[k]; pb != nil {
			return pb
		}
	}
	pb := s.prebuild(hs.insts, q, z, dc, ttl)
	hs.builtMu.Lock()
	defer hs.builtMu.Unlock()
	next := built{k: pb}
	if m := hs.built.Load(); m != nil {
		if len(*m) >= maxBuiltPerSet {
			// A set asked by many spellings of its name: start over
			// rather than grow without bound.
			hs.built.Store(&next)
			return pb
		}
		for key, v := range *m {
			next[key] = v
		}
	}
	hs.built.Store(&next)
	return pb
}

// maxBuiltPerSet bounds the prebuilt answers of one set.
const maxBuiltPerSet = 32

// prebuild builds the answer to q from insts in their order.
func (s *Server) prebuild(insts []*catalog.CheckServiceNode, q dns.Question, z *zone, dc string, ttl uint32) *prebuilt {
	pb := &prebuilt{}
	switch q.Qtype {
	case dns.TypeSRV:
		slab := newRRSlab(len(insts))
		pb.answer = make([]dns.RR, 0, len(insts))
		extra := make([]dns.RR, 0, len(insts))
		byTarget := make(map[string]dns.RR, len(insts))
		for _, inst := range insts {
			target, addr := s.srvTarget(slab, inst, z, dc, ttl)
			if target == "" {
				continue
			}
			if addr != nil {
				if prev, ok := byTarget[target]; ok {
					addr, pb.sharedEx = prev, true
				} else {
					byTarget[target] = addr
				}
			}
			pb.answer = append(pb.answer, slab.srv(q.Name, inst, target, ttl))
			extra = append(extra, addr)
		}
		if len(byTarget) > 0 {
			pb.extra = extra
		}
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		tmp := new(dns.Msg)
		serviceAddrRecords(tmp, q.Name, q.Qtype, ttl, insts)
		pb.answer = tmp.Answer
	}
	return pb
}

// fill puts the records of pb into resp, shuffled, at most limit of them
// (0: all), each with its additional record.
func (pb *prebuilt) fill(resp *dns.Msg, limit int) {
	n := len(pb.answer)
	if n == 0 {
		return
	}
	answer := slices.Clone(pb.answer)
	var extra []dns.RR
	if pb.extra == nil {
		rand.Shuffle(n, func(i, j int) { answer[i], answer[j] = answer[j], answer[i] })
	} else {
		extra = make([]dns.RR, n, n+1) // +1: room for the OPT record
		copy(extra, pb.extra)
		rand.Shuffle(n, func(i, j int) {
			answer[i], answer[j] = answer[j], answer[i]
			extra[i], extra[j] = extra[j], extra[i]
		})
	}
	if limit > 0 && n > limit {
		answer = answer[:limit]
		if extra != nil {
			extra = extra[:limit]
		}
	}
	if len(resp.Answer) == 0 {
		resp.Answer = answer // ours already: no second copy
	} else {
		resp.Answer = append(resp.Answer, answer...)
	}
	if extra == nil {
		return
	}
	// Keep each additional record once, in answer order, so that
	// truncation keeps the ones of the answers that fit.
	var seen map[dns.RR]struct{}
	if pb.sharedEx {
		seen = make(map[dns.RR]struct{}, len(extra))
	}
	kept := extra[:0]
	for _, rr := range extra {
		if rr == nil {
			continue
		}
		if seen != nil {
			if _, dup := seen[rr]; dup {
				continue
			}
			seen[rr] = struct{}{}
		}
		kept = append(kept, rr)
	}
	if len(resp.Extra) == 0 {
		resp.Extra = kept
	} else {
		resp.Extra = append(resp.Extra, kept...)
	}
}

// isLowerASCII reports whether name has no upper-case ASCII letter: then
// prebuilt records, whose owner is the question name, can be shared by
// every question spelled that way.
func isLowerASCII(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			return false
		}
	}
	return true
}
