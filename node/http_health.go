package node

import (
	"net/http"
	"strconv"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
)

func (a *Agent) healthService(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	tags := r.URL.Query()["tag"]
	passing, err := queryFlag(r, "passing")
	if err != nil {
		return nil, err
	}
	meta, err := nodeMetaFilter(r)
	if err != nil {
		return nil, err
	}
	var out []catalog.CheckServiceNode
	err = a.blockingRead(w, r, func(ws memdb.WatchSet) (uint64, error) {
		idx, csns, err := a.store.CheckServiceNodes(ws, name, tags, passing)
		if err != nil {
			return 0, err
		}
		out = make([]catalog.CheckServiceNode, 0, len(csns))
		for _, csn := range csns {
			if metaMatches(csn.Node.Meta, meta) {
				out = append(out, presentCheckServiceNode(csn))
			}
		}
		out, err = catalog.Filter(r.URL.Query().Get("filter"), out)
		return idx, err
	})
	shuffle(out)
	return out, err
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
func (a *Agent) checksRead(w http.ResponseWriter, r *http.Request, query func(ws memdb.WatchSet) (uint64, []*catalog.Check, error)) (any, error) {
	var out []*catalog.Check
	err := a.blockingRead(w, r, func(ws memdb.WatchSet) (uint64, error) {
		idx, chks, err := query(ws)
		if err != nil {
			return 0, err
		}
		out = make([]*catalog.Check, 0, len(chks))
		for _, c := range chks {
			out = append(out, presentCatalogCheck(c))
		}
		out, err = catalog.Filter(r.URL.Query().Get("filter"), out)
		return idx, err
	})
	return out, err
}

func (a *Agent) healthChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	return a.checksRead(w, r, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return a.store.ServiceChecks(ws, name)
	})
}

func (a *Agent) healthNode(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	return a.checksRead(w, r, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return a.store.NodeChecks(ws, name)
	})
}

func (a *Agent) healthState(w http.ResponseWriter, r *http.Request) (any, error) {
	state := r.PathValue("state")
	if state != catalog.HealthAny && !catalog.ValidStatus(state) {
		return nil, badRequest("state: unknown check state %q (want any, passing, warning or critical)", state)
	}
	return a.checksRead(w, r, func(ws memdb.WatchSet) (uint64, []*catalog.Check, error) {
		return a.store.ChecksInState(ws, state)
	})
}

func (a *Agent) statusLeader(w http.ResponseWriter, r *http.Request) (any, error) {
	return a.raft.Leader(), nil
}

func (a *Agent) statusPeers(w http.ResponseWriter, r *http.Request) (any, error) {
	peers, err := a.raft.Peers()
	return orEmpty(peers), err
}

func itoa(i int) string { return strconv.Itoa(i) }
