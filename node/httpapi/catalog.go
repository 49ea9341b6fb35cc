package httpapi

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

func (h *API) catalogRoutes(handle handleFunc) {
	handle(write, "/v1/catalog/register", h.catalogRegister)
	handle(write, "/v1/catalog/deregister", h.catalogDeregister)
	handle(read, "/v1/catalog/services", h.catalogServices)
	handle(read, "/v1/catalog/service/{name...}", h.catalogService)
	handle(read, "/v1/catalog/nodes", h.catalogNodes)
	handle(read, "/v1/catalog/node/{name...}", h.catalogNode)
	handle(read, "/v1/catalog/node-services/{name...}", h.catalogNodeServiceList)
	handle(read, "/v1/catalog/datacenters", h.catalogDatacenters)
}

// catalogRegisterBody is the body of PUT /v1/catalog/register, as
// Consul's api.CatalogRegistration sends it.
type catalogRegisterBody struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	Service         *catalogServiceBody
	Check           *catalogCheckBody
	Checks          []*catalogCheckBody
	SkipNodeUpdate  bool
}

type catalogServiceBody struct {
	ID                string
	Service           string
	Tags              []string
	Address           string
	Meta              map[string]string
	Port              int
	Weights           *config.Weights
	EnableTagOverride bool
	DNS               *config.ServiceDNS
}

type catalogCheckBody struct {
	Node      string
	CheckID   string `alias:"ID"`
	Name      string
	Status    string
	Notes     string
	Output    string
	ServiceID string
	Type      string
	// Definition is what the servers run for an external node: TTL is
	// dropped (nobody would heartbeat it).
	Definition catalog.CheckDefinition
}

func (h *API) catalogRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	var b catalogRegisterBody
	if err := decodeBody(r, w, &b); err != nil {
		return nil, err
	}
	dc, err := h.writeDC(r, b.Datacenter)
	if err != nil {
		return nil, err
	}
	req, err := h.toRegisterRequest(&b, dc)
	if err != nil {
		return nil, err
	}
	if err := server.ValidateRegister(req); err != nil {
		return nil, err // before asking the servers whether an agent owns the node
	}
	if err := h.refuseAgentNode(r.Context(), dc, req.Node); err != nil {
		return nil, err
	}
	if _, err := server.Register.Call(r.Context(), h.servers, req); err != nil {
		return nil, err
	}
	return true, nil
}

// writeDC is the datacenter a catalog write goes to: the body's
// Datacenter, else ?dc; "" for this agent's own.
func (h *API) writeDC(r *http.Request, body string) (string, error) {
	if body != "" {
		return datacenterParam("Datacenter", body, h.cfg.Datacenter)
	}
	return requestDC(r, h.cfg.Datacenter)
}

// toRegisterRequest turns a catalog/register body into the registration
// for datacenter dc ("" for this one). server.ValidateRegister checks the
// registration; only what the body's shape allows and the request's does
// not is checked here, and every error names the field.
func (h *API) toRegisterRequest(b *catalogRegisterBody, dc string) (*catalog.RegisterRequest, error) {
	if dc == "" {
		dc = h.cfg.Datacenter
	}
	req := &catalog.RegisterRequest{
		ID: b.ID, Node: b.Node, Address: b.Address, Datacenter: dc,
		TaggedAddresses: b.TaggedAddresses, NodeMeta: b.NodeMeta, SkipNodeUpdate: b.SkipNodeUpdate,
	}
	if s := b.Service; s != nil {
		weights := s.Weights.Catalog()
		id := s.ID
		if id == "" {
			id = s.Service
		}
		req.Service = &catalog.Service{
			ID: id, Service: s.Service, Tags: s.Tags, Address: s.Address, Meta: s.Meta,
			Port: s.Port, Weights: weights, EnableTagOverride: s.EnableTagOverride,
			DNS: s.DNS.Catalog(),
		}
	}
	bodies := b.Checks
	if b.Check != nil {
		bodies = append([]*catalogCheckBody{b.Check}, bodies...)
	}
	for i, c := range bodies {
		if c == nil {
			continue
		}
		field := "Checks[" + itoa(i) + "]"
		if b.Check != nil && i == 0 {
			field = "Check"
		}
		if c.Node != "" && !strings.EqualFold(c.Node, b.Node) {
			return nil, badRequest("%s.Node: check node %q does not match the registration's node %q", field, c.Node, b.Node)
		}
		if c.CheckID == "" {
			c.CheckID = c.Name
		}
		c.Definition.TTL = 0
		req.Checks = append(req.Checks, &catalog.Check{
			CheckID: c.CheckID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output,
			ServiceID: c.ServiceID, Type: c.Type, Definition: c.Definition,
		})
	}
	return req, nil
}

func (h *API) catalogDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	var b struct {
		Node       string
		Datacenter string
		ServiceID  string
		CheckID    string
	}
	if err := decodeBody(r, w, &b); err != nil {
		return nil, err
	}
	dc, err := h.writeDC(r, b.Datacenter)
	if err != nil {
		return nil, err
	}
	_, err = server.Deregister.Call(r.Context(), h.servers, &catalog.DeregisterRequest{Node: b.Node, ServiceID: b.ServiceID, CheckID: b.CheckID, Datacenter: dc})
	if err != nil {
		return nil, err
	}
	return true, nil
}

func (h *API) catalogServices(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	filter := r.URL.Query().Get("filter")
	meta, err := nodeMetaFilter(r)
	if err != nil {
		return nil, err
	}
	if filter == "" && meta == nil {
		res, err := server.Services.Call(r.Context(), h.servers, &qo)
		if err != nil {
			return nil, err
		}
		setMeta(w, res.QueryMeta)
		out := make(map[string][]string, len(res.Services))
		for name, tags := range res.Services {
			out[name] = orEmpty(tags)
		}
		return out, nil
	}
	// As Consul: the filter sees each instance (ServiceName, ServiceTags,
	// NodeMeta...), the answer lists the names it kept.
	res, err := server.AllServiceNodes.Call(r.Context(), h.servers, &qo)
	if err != nil {
		return nil, err
	}
	kept, err := catalog.Filter(filter, flattenServiceNodes(keepNodeMeta(res.Nodes, meta)))
	if err != nil {
		return nil, err
	}
	setMeta(w, res.QueryMeta)
	return serviceTags(kept), nil
}

// keepNodeMeta keeps the instances whose node carries every pair of meta.
func keepNodeMeta(items []catalog.ServiceNode, meta map[string]string) []catalog.ServiceNode {
	if len(meta) == 0 {
		return items
	}
	var out []catalog.ServiceNode
	for _, it := range items {
		if metaMatches(it.Node.Meta, meta) {
			out = append(out, it)
		}
	}
	return out
}

// serviceTags lists each service name once with the sorted union of its
// instances' tags.
func serviceTags(svcs []catalogService) map[string][]string {
	sets := map[string]map[string]struct{}{}
	for _, s := range svcs {
		set := sets[s.ServiceName]
		if set == nil {
			set = map[string]struct{}{}
			sets[s.ServiceName] = set
		}
		for _, t := range s.ServiceTags {
			set[t] = struct{}{}
		}
	}
	out := make(map[string][]string, len(sets))
	for name, set := range sets {
		out[name] = slices.Sorted(maps.Keys(set))
		out[name] = orEmpty(out[name])
	}
	return out
}

// flattenServiceNodes turns instances into Consul's CatalogService rows.
func flattenServiceNodes(sns []catalog.ServiceNode) []catalogService {
	out := make([]catalogService, 0, len(sns))
	for _, sn := range sns {
		n, s := sn.Node, sn.Service
		out = append(out, catalogService{
			ID: n.ID, Node: n.Node, Address: n.Address, Datacenter: n.Datacenter,
			TaggedAddresses: orEmptyMap(n.TaggedAddresses), NodeMeta: orEmptyMap(n.Meta),
			ServiceID: s.ID, ServiceName: s.Service, ServiceTags: orEmpty(s.Tags), ServiceAddress: s.Address,
			ServiceWeights: s.Weights, ServiceMeta: orEmptyMap(s.Meta), ServicePort: s.Port,
			ServiceEnableTagOverride: s.EnableTagOverride,
			CreateIndex:              s.CreateIndex, ModifyIndex: s.ModifyIndex,
		})
	}
	return out
}

// catalogService is Consul's flattened CatalogService.
type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string
	ServiceID                string
	ServiceName              string
	ServiceTags              []string
	ServiceAddress           string
	ServiceWeights           catalog.Weights
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

func (h *API) catalogService(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	meta, err := nodeMetaFilter(r)
	if err != nil {
		return nil, err
	}
	cc, err := h.readCacheControl(r, &qo)
	if err != nil {
		return nil, err
	}
	q := &rpc.ServiceQuery{Service: r.PathValue("name"), Tags: r.URL.Query()["tag"], QueryOptions: qo}
	var res *rpc.ServiceNodesResponse
	if cc.use {
		// The health answer with critical instances holds every instance.
		var hres *rpc.CheckServiceNodesResponse
		if hres, _, err = h.cachedHealth(r.Context(), w, cc, q); err == nil {
			res = &rpc.ServiceNodesResponse{Nodes: serviceNodesOf(hres.Nodes), QueryMeta: hres.QueryMeta}
		}
	} else {
		res, err = server.ServiceNodes.Call(r.Context(), h.servers, q)
	}
	if err != nil {
		return nil, err
	}
	out, err := catalog.Filter(r.URL.Query().Get("filter"), flattenServiceNodes(keepNodeMeta(res.Nodes, meta)))
	if err != nil {
		return nil, err
	}
	setMeta(w, res.QueryMeta)
	shuffle(out)
	return out, nil
}

// presentNode copies a node with empty maps for nil ones.
func presentNode(n *catalog.Node) *catalog.Node {
	c := *n
	c.TaggedAddresses, c.Meta = orEmptyMap(c.TaggedAddresses), orEmptyMap(c.Meta)
	return &c
}

func (h *API) catalogNodes(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	meta, err := nodeMetaFilter(r)
	if err != nil {
		return nil, err
	}
	res, err := server.Nodes.Call(r.Context(), h.servers, &qo)
	if err != nil {
		return nil, err
	}
	out := make([]*catalog.Node, 0, len(res.Nodes))
	for _, n := range res.Nodes {
		if metaMatches(n.Meta, meta) {
			out = append(out, presentNode(n))
		}
	}
	out, err = catalog.Filter(r.URL.Query().Get("filter"), out)
	if err != nil {
		return nil, err
	}
	setMeta(w, res.QueryMeta)
	return out, nil
}

func (h *API) catalogNode(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	res, err := server.NodeServices.Call(r.Context(), h.servers, &rpc.NodeQuery{Node: r.PathValue("name"), QueryOptions: qo})
	if err != nil {
		return nil, err
	}
	setMeta(w, res.QueryMeta)
	if res.Node == nil {
		return jsonNull{}, nil
	}
	m := make(map[string]agentService, len(res.Services))
	for _, s := range res.Services {
		as := h.toAgentService(s)
		as.Datacenter = ""
		m[s.ID] = as
	}
	return map[string]any{"Node": presentNode(res.Node), "Services": m}, nil
}

// catalogNodeServiceList answers GET /v1/catalog/node-services/:node: the
// node and its instances as a list, ?filter applied by the server. An
// unknown node is a null Node and no instances, as in Consul.
func (h *API) catalogNodeServiceList(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	res, err := server.NodeServiceList.Call(r.Context(), h.servers,
		&server.NodeServiceListQuery{Node: r.PathValue("name"), Filter: r.URL.Query().Get("filter"), QueryOptions: qo})
	if err != nil {
		return nil, err
	}
	setMeta(w, res.QueryMeta)
	out := struct {
		Node     *catalog.Node
		Services []agentService
	}{Services: make([]agentService, 0, len(res.Services))}
	if res.Node != nil {
		out.Node = presentNode(res.Node)
	}
	for _, s := range res.Services {
		as := h.toAgentService(s)
		as.Datacenter = ""
		out.Services = append(out.Services, as)
	}
	return out, nil
}

// jsonNull encodes as null: Consul answers an unknown node with null.
type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// catalogDatacenters lists the datacenters the WAN pool knows, nearest
// first by round-trip time from the answering server.
func (h *API) catalogDatacenters(w http.ResponseWriter, r *http.Request) (any, error) {
	dcs, err := server.ListDatacenters.Call(r.Context(), h.servers, &rpc.Empty{})
	return orEmpty(*dcs), err
}

// refuseAgentNode refuses a catalog write onto a node that runs an agent
// (it carries serfHealth): that agent's anti-entropy owns the node and
// would silently remove what the write added within a minute, a known
// Consul surprise. Such services belong in the agent's own API.
func (h *API) refuseAgentNode(ctx context.Context, dc, node string) error {
	res, err := server.NodeChecks.Call(ctx, h.servers, &rpc.NodeQuery{Node: node, QueryOptions: rpc.QueryOptions{AllowStale: true, Datacenter: dc}})
	if err != nil {
		return err
	}
	for _, c := range res.Checks {
		if c.CheckID == catalog.SerfCheckID {
			return &httpError{http.StatusConflict, fmt.Sprintf(
				"Node: %q runs a meshd agent, which owns what is registered on it; register through that agent "+
					"(PUT /v1/agent/service/register on %s) or use a node name no agent runs under", node, node)}
		}
	}
	return nil
}
