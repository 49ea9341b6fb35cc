package httpapi

import (
	"net/http"
	"strconv"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

func (h *API) queryRoutes(handle handleFunc) {
	handle("POST", "/v1/query", h.queryCreate)
	handle(read, "/v1/query", h.queryList)
	handle(read, "/v1/query/{id}", h.queryGet)
	handle("PUT", "/v1/query/{id}", h.queryUpdate)
	handle("DELETE", "/v1/query/{id}", h.queryDelete)
	handle(read, "/v1/query/{id}/execute", h.queryExecute)
}

// queryBody is a prepared query as clients send it: Consul's fields,
// with the ones meshd does not run refused by name rather than ignored.
type queryBody struct {
	Name     string
	Service  catalog.ServiceQuery
	DNS      catalog.QueryDNSOptions
	Template *struct {
		Type   string
		Regexp string
	}
	Session string
}

func (h *API) decodeQuery(w http.ResponseWriter, r *http.Request) (*catalog.PreparedQuery, error) {
	var b queryBody
	if err := decodeBody(r, w, &b); err != nil {
		return nil, err
	}
	if b.Template != nil && (b.Template.Type != "" || b.Template.Regexp != "") {
		return nil, badRequest("Template: query templates are not supported; create one query per service")
	}
	if b.Session != "" {
		return nil, badRequest("Session: sessions are not supported")
	}
	q := catalog.PreparedQuery{Name: b.Name, Service: b.Service, DNS: b.DNS}
	for i, dc := range q.Service.Failover.Datacenters {
		if _, err := datacenterParam("Service.Failover.Datacenters["+strconv.Itoa(i)+"]", dc, ""); err != nil {
			return nil, err
		}
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	return &q, nil
}

// queryWrite reads what a query create or update takes: ?dc and the body.
func (h *API) queryWrite(w http.ResponseWriter, r *http.Request) (string, *catalog.PreparedQuery, error) {
	dc, err := requestDC(r, h.cfg.Datacenter)
	if err != nil {
		return "", nil, err
	}
	q, err := h.decodeQuery(w, r)
	return dc, q, err
}

// queryCreate answers POST /v1/query: {"ID": "..."}.
func (h *API) queryCreate(w http.ResponseWriter, r *http.Request) (any, error) {
	dc, q, err := h.queryWrite(w, r)
	if err != nil {
		return nil, err
	}
	q.ID = ""
	req := &catalog.PreparedQueryRequest{Op: catalog.QuerySet, Query: q, Datacenter: dc}
	id := server.NewQueryID(req)
	if _, err := server.PreparedQueryApply.Call(r.Context(), h.servers, req); err != nil {
		return nil, err
	}
	return map[string]string{"ID": id}, nil
}

// queryUpdate answers PUT /v1/query/:id: the query must exist.
func (h *API) queryUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	dc, q, err := h.queryWrite(w, r)
	if err != nil {
		return nil, err
	}
	existing, err := h.lookupQuery(r, dc)
	if err != nil {
		return nil, err
	}
	q.ID = existing.ID
	_, err = server.PreparedQueryApply.Call(r.Context(), h.servers, &catalog.PreparedQueryRequest{Op: catalog.QuerySet, Query: q, Datacenter: dc})
	return nil, err
}

func (h *API) queryDelete(w http.ResponseWriter, r *http.Request) (any, error) {
	dc, err := requestDC(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	existing, err := h.lookupQuery(r, dc)
	if err != nil {
		return nil, err
	}
	_, err = server.PreparedQueryApply.Call(r.Context(), h.servers, &catalog.PreparedQueryRequest{
		Op: catalog.QueryDelete, Query: &catalog.PreparedQuery{ID: existing.ID}, Datacenter: dc})
	return nil, err
}

// lookupQuery finds the query named by the path's ID (or name), for a
// write; 404 when there is none.
func (h *API) lookupQuery(r *http.Request, dc string) (*catalog.PreparedQuery, error) {
	res, err := server.PreparedQueryGet.Call(r.Context(), h.servers, &rpc.PreparedQueryGet{QueryID: r.PathValue("id"),
		QueryOptions: rpc.QueryOptions{Datacenter: dc}})
	if err != nil {
		return nil, err
	}
	if len(res.Queries) == 0 {
		return nil, notFound("%v: %q", server.ErrQueryNotFound, r.PathValue("id"))
	}
	return res.Queries[0], nil
}

// queryGet answers GET /v1/query/:id: a list of one, as Consul's.
func (h *API) queryGet(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	res, err := server.PreparedQueryGet.Call(r.Context(), h.servers, &rpc.PreparedQueryGet{QueryID: r.PathValue("id"), QueryOptions: qo})
	if err != nil {
		return nil, err
	}
	if len(res.Queries) == 0 {
		return nil, notFound("%v: %q", server.ErrQueryNotFound, r.PathValue("id"))
	}
	setMeta(w, res.QueryMeta)
	return presentQueries(res.Queries), nil
}

func (h *API) queryList(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	res, err := server.PreparedQueryList.Call(r.Context(), h.servers, &qo)
	if err != nil {
		return nil, err
	}
	setMeta(w, res.QueryMeta)
	return presentQueries(res.Queries), nil
}

func presentQueries(qs []*catalog.PreparedQuery) []catalog.PreparedQuery {
	out := make([]catalog.PreparedQuery, 0, len(qs))
	for _, q := range qs {
		c := *q
		c.Service.Tags = orEmpty(c.Service.Tags)
		c.Service.Failover.Datacenters = orEmpty(c.Service.Failover.Datacenters)
		c.Service.IgnoreCheckIDs = orEmpty(c.Service.IgnoreCheckIDs)
		c.Service.NodeMeta, c.Service.ServiceMeta = orEmptyMap(c.Service.NodeMeta), orEmptyMap(c.Service.ServiceMeta)
		out = append(out, c)
	}
	return out
}

// queryExecuteResult is Consul's api.PreparedQueryExecuteResponse.
type queryExecuteResult struct {
	Service    string
	Nodes      []catalog.CheckServiceNode
	DNS        catalog.QueryDNSOptions
	Datacenter string
	Failovers  int
}

// queryExecute answers GET /v1/query/:id/execute (?dc, ?limit, ?near).
func (h *API) queryExecute(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return nil, badRequest("Invalid limit: %q is not a whole number", v)
		}
	}
	qo.MinIndex = 0
	res, err := server.PreparedQueryExecute.Call(r.Context(), h.servers, &rpc.PreparedQueryExecute{QueryIDOrName: r.PathValue("id"), Limit: limit, QueryOptions: qo})
	if err != nil {
		return nil, err
	}
	if !res.Found {
		return nil, notFound("%v: %q", server.ErrQueryNotFound, r.PathValue("id"))
	}
	setMeta(w, res.QueryMeta)
	out := queryExecuteResult{Service: res.Service, DNS: res.DNS, Datacenter: res.Datacenter, Failovers: res.Failovers,
		Nodes: make([]catalog.CheckServiceNode, 0, len(res.Nodes))}
	for _, csn := range res.Nodes {
		out.Nodes = append(out.Nodes, presentCheckServiceNode(csn))
	}
	near := r.URL.Query().Get("near")
	if near == "" {
		near = res.Near
	}
	if near != "" && res.Datacenter == h.cfg.Datacenter {
		sortNear(out.Nodes, h.distanceFrom(near))
	}
	return out, nil
}
