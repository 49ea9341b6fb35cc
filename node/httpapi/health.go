package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/client"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

func (h *API) healthRoutes(handle handleFunc) {
	handle(read, "/v1/health/service/{name...}", h.healthService)
	handle(read, "/v1/health/checks/{name...}", h.healthChecks)
	handle(read, "/v1/health/node/{name...}", h.healthNode)
	handle(read, "/v1/health/state/{state...}", h.healthState)
	handle(read, "/v1/status/leader", h.statusLeader)
	handle(read, "/v1/status/peers", h.statusPeers)
}

// healthService answers GET /v1/health/service/:name: the instances with
// their checks, shuffled (client-side balancing), or sorted nearest first
// with ?near.
func (h *API) healthService(w http.ResponseWriter, r *http.Request) (any, error) {
	passing, err := queryFlag(r, "passing")
	if err != nil {
		return nil, err
	}
	near := r.URL.Query().Get("near")
	ans, err := h.serviceEntries(w, r, passing, near == "")
	if err != nil {
		return nil, err
	}
	setMeta(w, ans.meta)
	if ans.encoded != nil {
		enc := slices.Clone(ans.encoded)
		shuffle(enc)
		return encodedList(enc), nil
	}
	out := ans.entries
	shuffle(out)
	if near != "" {
		sortNear(out, h.distanceFrom(near))
	}
	return out, nil
}

// serviceAnswer is what serviceEntries found: the entries, presented, or
// when the caller can use them and the read was a plain one from the
// agent cache, their JSON shared with every read of the same answer.
type serviceAnswer struct {
	entries []catalog.CheckServiceNode
	encoded []json.RawMessage
	meta    rpc.QueryMeta
}

// encodedList is a JSON array of entries encoded already.
type encodedList []json.RawMessage

// MarshalJSON is for the encoder's ?pretty path; the API writes the list
// itself otherwise (see wrap).
func (l encodedList) MarshalJSON() ([]byte, error) { return l.appendTo(nil), nil }

// appendTo appends the array to b.
func (l encodedList) appendTo(b []byte) []byte {
	n := 3
	for _, e := range l {
		n += len(e) + 1
	}
	b = slices.Grow(b, n)
	b = append(b, '[')
	for i, e := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, ']')
}

// serviceEntries runs the query behind health/service and lb/service:
// the instances of the service named in the path matching ?tag (repeated),
// ?node-meta and ?filter, critical ones included unless passingOnly; from
// the agent cache when the read allows it (see readCacheControl). With
// encoded, a read from the cache with neither ?node-meta nor ?filter comes
// back as the answer's shared JSON instead of entries.
func (h *API) serviceEntries(w http.ResponseWriter, r *http.Request, passingOnly, encoded bool) (serviceAnswer, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return serviceAnswer{}, err
	}
	meta, err := nodeMetaFilter(r)
	if err != nil {
		return serviceAnswer{}, err
	}
	cc, err := h.readCacheControl(r, &qo)
	if err != nil {
		return serviceAnswer{}, err
	}
	q := &rpc.ServiceQuery{Service: r.PathValue("name"), Tags: r.URL.Query()["tag"], PassingOnly: passingOnly, QueryOptions: qo}
	var res *rpc.CheckServiceNodesResponse
	var cached *client.Answer
	if cc.use {
		res, cached, err = h.cachedHealth(r.Context(), w, cc, q)
	} else {
		res, err = server.HealthServiceNodes.Call(r.Context(), h.servers, q)
	}
	if err != nil {
		return serviceAnswer{}, err
	}
	filter := r.URL.Query().Get("filter")
	if encoded && cached != nil && len(meta) == 0 && filter == "" {
		enc, err := cached.EncodedNodes(func(csn catalog.CheckServiceNode) any { return presentCheckServiceNode(csn) })
		if err != nil {
			return serviceAnswer{}, err
		}
		return serviceAnswer{encoded: enc, meta: res.QueryMeta}, nil
	}
	out := make([]catalog.CheckServiceNode, 0, len(res.Nodes))
	for _, csn := range res.Nodes {
		if metaMatches(csn.Node.Meta, meta) {
			out = append(out, presentCheckServiceNode(csn))
		}
	}
	out, err = catalog.Filter(filter, out)
	if err != nil {
		return serviceAnswer{}, err
	}
	return serviceAnswer{entries: out, meta: res.QueryMeta}, nil
}

// presentCheckServiceNode copies an entry with [] and {} for nil slices
// and maps, as Consul's clients expect.
func presentCheckServiceNode(csn catalog.CheckServiceNode) catalog.CheckServiceNode {
	s := *csn.Service
	s.Tags, s.Meta = orEmpty(s.Tags), orEmptyMap(s.Meta)
	checks := make([]*catalog.Check, 0, len(csn.Checks))
	for _, c := range csn.Checks {
		checks = append(checks, presentCatalogCheck(c))
	}
	return catalog.CheckServiceNode{Node: presentNode(csn.Node), Service: &s, Checks: checks}
}

func presentCatalogCheck(c *catalog.Check) *catalog.Check {
	cc := *c
	cc.ServiceTags = orEmpty(cc.ServiceTags)
	return &cc
}

// checksRead answers a read of a check list.
func (h *API) checksRead(w http.ResponseWriter, r *http.Request, read func(qo rpc.QueryOptions) (*rpc.ChecksResponse, error)) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	res, err := read(qo)
	if err != nil {
		return nil, err
	}
	out := make([]*catalog.Check, 0, len(res.Checks))
	for _, c := range res.Checks {
		out = append(out, presentCatalogCheck(c))
	}
	out, err = catalog.Filter(r.URL.Query().Get("filter"), out)
	if err != nil {
		return nil, err
	}
	setMeta(w, res.QueryMeta)
	return out, nil
}

func (h *API) healthChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	return h.checksRead(w, r, func(qo rpc.QueryOptions) (*rpc.ChecksResponse, error) {
		return server.ServiceChecks.Call(r.Context(), h.servers, &rpc.ServiceQuery{Service: r.PathValue("name"), QueryOptions: qo})
	})
}

func (h *API) healthNode(w http.ResponseWriter, r *http.Request) (any, error) {
	return h.checksRead(w, r, func(qo rpc.QueryOptions) (*rpc.ChecksResponse, error) {
		return server.NodeChecks.Call(r.Context(), h.servers, &rpc.NodeQuery{Node: r.PathValue("name"), QueryOptions: qo})
	})
}

func (h *API) healthState(w http.ResponseWriter, r *http.Request) (any, error) {
	state := r.PathValue("state")
	if state != catalog.HealthAny && !catalog.ValidStatus(state) {
		return nil, badRequest("state: unknown check state %q (want any, passing, warning or critical)", state)
	}
	return h.checksRead(w, r, func(qo rpc.QueryOptions) (*rpc.ChecksResponse, error) {
		return server.ChecksInState.Call(r.Context(), h.servers, &rpc.StateQuery{State: state, QueryOptions: qo})
	})
}

func (h *API) statusLeader(w http.ResponseWriter, r *http.Request) (any, error) {
	dc, err := requestDC(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	return server.Leader.Call(r.Context(), h.servers, &rpc.DCRequest{Datacenter: dc})
}

func (h *API) statusPeers(w http.ResponseWriter, r *http.Request) (any, error) {
	dc, err := requestDC(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	peers, err := server.Peers.Call(r.Context(), h.servers, &rpc.DCRequest{Datacenter: dc})
	return orEmpty(*peers), err
}

func itoa(i int) string { return strconv.Itoa(i) }
