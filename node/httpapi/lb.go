package httpapi

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/catalog/balance"
)

func (h *API) lbRoutes(handle handleFunc) {
	handle(read, "/v1/lb/service/{name...}", h.lbService)
}

// lbService answers GET /v1/lb/service/:name: server-side load balancing.
// It takes health/service's filters (?tag, ?node-meta, ?filter, ?dc,
// ?passing, ?stale...) and returns ONE healthy instance, as a
// health/service entry, chosen by ?policy: weighted (default), round_robin,
// least_recent or nearest (to ?near, default this agent). The choice is
// made by this agent, so round_robin and least_recent are fair per agent,
// not across agents; weighted needs no shared state at all.
//
// 404 when the service has no instance matching the filters, 503 when it
// has some but none is healthy.
func (h *API) lbService(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	policy, err := balance.ParsePolicy(q.Get("policy"))
	if err != nil {
		return nil, badRequest("policy: %v", err)
	}
	passing, err := queryFlag(r, "passing")
	if err != nil {
		return nil, err
	}
	ans, err := h.serviceEntries(w, r, false, false)
	if err != nil {
		return nil, err
	}
	entries := ans.entries
	setMeta(w, ans.meta)
	name := r.PathValue("name")
	if len(entries) == 0 {
		return nil, notFound("no instance of service %q", name)
	}
	healthy := make([]*catalog.CheckServiceNode, 0, len(entries))
	for i := range entries {
		if entries[i].Healthy(passing) {
			healthy = append(healthy, &entries[i])
		}
	}
	if len(healthy) == 0 {
		return nil, &httpError{http.StatusServiceUnavailable, fmt.Sprintf("no healthy instance of service %q", name)}
	}
	var dist balance.Distance
	if policy == balance.PolicyNearest {
		dist = h.distanceFrom(cmp.Or(q.Get("near"), "_agent"))
	}
	i := h.balancer.Pick(lbKey(r), policy, healthy, dist)
	w.Header().Set("X-Meshd-LB-Policy", string(policy))
	return healthy[i], nil
}

// lbKey names the candidate set of an lb request for the balancer's
// memory: the service and every parameter that filters it.
func lbKey(r *http.Request) string {
	q := r.URL.Query()
	tags := slices.Clone(q["tag"])
	slices.Sort(tags)
	meta := slices.Clone(q["node-meta"])
	slices.Sort(meta)
	return strings.Join([]string{
		strings.ToLower(r.PathValue("name")), strings.ToLower(q.Get("dc")),
		strings.Join(tags, ","), strings.Join(meta, ","), q.Get("filter"), q.Get("passing"),
	}, "\x00")
}

// distanceFrom estimates round-trip times from node near ("_agent": this
// agent) to instances' nodes; nil when near has no coordinate.
func (h *API) distanceFrom(near string) balance.Distance {
	if near == "_agent" {
		near = h.cfg.NodeName
	}
	return h.members.Distance(near)
}

// sortNear orders entries nearest first by dist, those at an unknown
// distance last in their current order; dist nil leaves them alone.
func sortNear(entries []catalog.CheckServiceNode, dist balance.Distance) {
	if dist == nil {
		return
	}
	type keyed struct {
		rtt time.Duration
		ok  bool
	}
	keys := make(map[string]keyed, len(entries))
	for i := range entries {
		if _, done := keys[entries[i].Node.Node]; !done {
			rtt, ok := dist(&entries[i])
			keys[entries[i].Node.Node] = keyed{rtt, ok}
		}
	}
	slices.SortStableFunc(entries, func(x, y catalog.CheckServiceNode) int {
		kx, ky := keys[x.Node.Node], keys[y.Node.Node]
		switch {
		case kx.ok != ky.ok:
			if kx.ok {
				return -1
			}
			return 1
		case !kx.ok:
			return 0
		}
		return cmp.Compare(kx.rtt, ky.rtt)
	})
}
