package dns

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// serviceTTLs is Config.ServiceTTL with its ServiceTTLs overrides, in the
// shape lookup wants: an exact-name map and the prefixes longest first.
// Read-only once built, so safe for concurrent use.
type serviceTTLs struct {
	def      uint32
	exact    map[string]uint32 // lower-case service name
	prefixes []ttlPrefix       // longest first; "" ("*") last
}

type ttlPrefix struct {
	prefix string // lower case
	ttl    uint32
}

// newServiceTTLs builds the table from a validated Config.
func newServiceTTLs(def time.Duration, overrides map[string]time.Duration) serviceTTLs {
	t := serviceTTLs{def: ttlSeconds(def)}
	for k, v := range overrides {
		k = strings.ToLower(k)
		if p, ok := strings.CutSuffix(k, "*"); ok {
			t.prefixes = append(t.prefixes, ttlPrefix{prefix: p, ttl: ttlSeconds(v)})
			continue
		}
		if t.exact == nil {
			t.exact = make(map[string]uint32)
		}
		t.exact[k] = ttlSeconds(v)
	}
	// Validate rejects keys equal but for case, so no two prefixes are
	// equal and the order is total.
	slices.SortFunc(t.prefixes, func(a, b ttlPrefix) int {
		if c := cmp.Compare(len(b.prefix), len(a.prefix)); c != 0 {
			return c
		}
		return strings.Compare(a.prefix, b.prefix)
	})
	return t
}

// lookup returns the TTL of service, a lower-case name. It allocates
// nothing; it walks the prefixes only when the name has no exact key.
func (t *serviceTTLs) lookup(service string) uint32 {
	if ttl, ok := t.exact[service]; ok {
		return ttl
	}
	for _, p := range t.prefixes {
		if strings.HasPrefix(service, p.prefix) {
			return p.ttl
		}
	}
	return t.def
}

// ttlSeconds is d in whole seconds, as a record TTL; d is validated.
func ttlSeconds(d time.Duration) uint32 {
	return uint32(d / time.Second)
}
