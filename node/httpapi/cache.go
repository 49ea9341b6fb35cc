package httpapi

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/client"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// cacheControl is what a read of health/service or catalog/service asks
// of the agent cache.
type cacheControl struct {
	// use: answer from the cache (a client agent, ?cached or ?stale).
	use bool
	// maxAge, when set, is the oldest answer the read takes from the
	// cache; an older one is fetched again. staleIfError, when set, is how
	// far past maxAge the cached answer may still be served when that
	// fetch fails (RFC 5861).
	maxAge, staleIfError       time.Duration
	hasMaxAge, hasStaleIfError bool
}

// readCacheControl reads ?cached, ?max-age and ?stale-if-error, and the
// Cache-Control header's max-age and stale-if-error (the query wins), for
// a read with qo. A client agent answers ?cached and ?stale reads from its
// cache, unless the read is consistent or bounds its staleness itself
// (?max_stale): those go to the servers. On a server, whose own catalog
// is the freshest copy there is, ?cached is a stale read of it.
func (h *API) readCacheControl(r *http.Request, qo *rpc.QueryOptions) (cacheControl, error) {
	var cc cacheControl
	cached, err := queryFlag(r, "cached")
	if err != nil {
		return cc, err
	}
	if cached && qo.RequireConsistent {
		return cc, badRequest("Cannot specify ?cached with ?consistent, conflicting semantics.")
	}
	// The header's directives first, then the query's, which win.
	set := func(name, field, val string) error {
		var err error
		switch name {
		case "max-age":
			cc.maxAge, err = cacheSeconds(field, val)
			cc.hasMaxAge = true
		case "stale-if-error":
			cc.staleIfError, err = cacheSeconds(field, val)
			cc.hasStaleIfError = true
		}
		return err
	}
	for _, d := range strings.Split(r.Header.Get("Cache-Control"), ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		name = strings.ToLower(name)
		if err := set(name, "Cache-Control "+name, val); err != nil {
			return cc, err
		}
	}
	q := r.URL.Query()
	for _, name := range []string{"max-age", "stale-if-error"} {
		if v, ok := q[name]; ok {
			if err := set(name, name, v[0]); err != nil {
				return cc, err
			}
		}
	}
	if h.cache == nil {
		if cached {
			qo.AllowStale = true
		}
		return cc, nil
	}
	cc.use = (cached || qo.AllowStale) && !qo.RequireConsistent && qo.MaxStale == 0
	return cc, nil
}

// cacheSeconds parses a cache age: whole seconds as HTTP has them, or a
// Go duration ("90s").
func cacheSeconds(field, v string) (time.Duration, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, nil
	}
	return 0, badRequest("Invalid %s: %q is not a number of seconds", field, v)
}

// cachedHealth answers q from the agent cache as cc asks, blocking on the
// cache with q's index and wait, and writes X-Cache and Age. The nodes it
// returns are shared: callers copy before they change anything. The cached
// answer comes back too, nil when the servers were asked instead.
func (h *API) cachedHealth(ctx context.Context, w http.ResponseWriter, cc cacheControl, q *rpc.ServiceQuery) (*rpc.CheckServiceNodesResponse, *client.Answer, error) {
	dc := q.Datacenter
	if dc == "" {
		dc = h.cfg.Datacenter
	}
	key := client.NewKey(dc, q.Service, q.Tags, q.PassingOnly)
	ans, hit, err := h.cache.GetBlocking(ctx, key, q.MinIndex, q.MaxWait)
	if err != nil {
		return nil, nil, err
	}
	age := ans.Age()
	if cc.hasMaxAge && age > cc.maxAge {
		// Too old for this read: ask the servers (any of them) once.
		res, ferr := server.HealthServiceNodes.Call(ctx, h.servers, &rpc.ServiceQuery{
			Service: q.Service, Tags: q.Tags, PassingOnly: q.PassingOnly,
			QueryOptions: rpc.QueryOptions{Datacenter: q.Datacenter, AllowStale: true, MaxStale: h.cfg.DNS.MaxStale},
		})
		if ferr == nil {
			setCacheHeaders(w, false, 0)
			return res, nil, nil
		}
		// The fetch may have taken a while: judge the answer by its age now.
		age = ans.Age()
		if !cc.hasStaleIfError || age > cc.maxAge+cc.staleIfError || age > h.cache.StaleIfError() {
			return nil, nil, ferr
		}
	}
	setCacheHeaders(w, hit, age)
	return &rpc.CheckServiceNodesResponse{Nodes: ans.Nodes(), QueryMeta: ans.Meta()}, ans, nil
}

// setCacheHeaders writes X-Cache and Age (whole seconds, rounded up, so an
// unconfirmed answer never claims 0), and marks an unconfirmed answer
// stale with a Warning, as HTTP caches do.
func setCacheHeaders(w http.ResponseWriter, hit bool, age time.Duration) {
	h := w.Header()
	if hit {
		h.Set("X-Cache", "HIT")
	} else {
		h.Set("X-Cache", "MISS")
	}
	h.Set("Age", strconv.FormatInt(int64(math.Ceil(age.Seconds())), 10))
	if age > 0 {
		h.Set("Warning", `110 - "Response is Stale"`)
	}
}

// serviceNodesOf turns health entries into catalog entries, sharing the
// nodes and instances.
func serviceNodesOf(csns []catalog.CheckServiceNode) []catalog.ServiceNode {
	out := make([]catalog.ServiceNode, len(csns))
	for i, c := range csns {
		out[i] = catalog.ServiceNode{Node: c.Node, Service: c.Service}
	}
	return out
}
