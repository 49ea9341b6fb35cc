package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/rpc"
)

// Prepared queries (/v1/query): stored in the Raft log of the datacenter
// they are created in, run by its servers. Running one looks up the
// service in this datacenter; when no instance passes, it asks the
// datacenters of its failover list in turn (the NearestN nearest other
// datacenters by round-trip time, then Failover.Datacenters), each with
// the query's definition, and answers with the first that has one.

// PreparedQueryApply creates, replaces or deletes a prepared query in
// datacenter req.Datacenter and returns its ID. A new query (set without
// an ID) gets one here, before the Raft write, so every server stores the
// same.
func (s *localServer) PreparedQueryApply(ctx context.Context, req *catalog.PreparedQueryRequest) (string, error) {
	if req.Query == nil {
		return "", fmt.Errorf("%w: prepared query: missing query", catalog.ErrInvalid)
	}
	if req.Op == catalog.QuerySet {
		if err := req.Query.Validate(); err != nil {
			return "", err
		}
		if req.Query.ID == "" {
			id, err := newUUID()
			if err != nil {
				return "", err
			}
			req.Query.ID = id
		}
	}
	_, err := s.write(ctx, req.Datacenter, consensus.PreparedQueryType|consensus.IgnoreUnknownTypeFlag, req, "PreparedQuery.Apply")
	return req.Query.ID, err
}

func (s *localServer) PreparedQueryGet(ctx context.Context, q *rpc.PreparedQueryGet) (*rpc.PreparedQueriesResponse, error) {
	out := &rpc.PreparedQueriesResponse{}
	if here, err := s.read(ctx, &q.QueryOptions, "PreparedQuery.Get", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, &q.QueryOptions, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, pq, err := s.store.PreparedQuery(ws, q.QueryID)
		out.Queries = nil
		if pq != nil {
			out.Queries = []*catalog.PreparedQuery{pq}
		}
		return idx, err
	})
}

func (s *localServer) PreparedQueryList(ctx context.Context, q *rpc.QueryOptions) (*rpc.PreparedQueriesResponse, error) {
	out := &rpc.PreparedQueriesResponse{}
	if here, err := s.read(ctx, q, "PreparedQuery.List", q, out); !here || err != nil {
		return out, err
	}
	return out, s.blockingQuery(ctx, q, &out.QueryMeta, func(ws memdb.WatchSet) (uint64, error) {
		idx, qs, err := s.store.PreparedQueries(ws)
		out.Queries = qs
		return idx, err
	})
}

// PreparedQueryExecute runs a stored query, in datacenter q.Datacenter
// (forwarded there: the query must be stored there).
func (s *localServer) PreparedQueryExecute(ctx context.Context, q *rpc.PreparedQueryExecute) (*rpc.PreparedQueryExecuteResponse, error) {
	out := &rpc.PreparedQueryExecuteResponse{}
	opts := q.QueryOptions
	opts.MinIndex = 0 // executing does not block
	if here, err := s.read(ctx, &opts, "PreparedQuery.Execute", q, out); !here || err != nil {
		return out, err
	}
	if err := s.readReady(ctx, &opts); err != nil {
		return nil, err
	}
	_, pq, err := s.store.PreparedQuery(nil, q.QueryIDOrName)
	if err != nil || pq == nil {
		return out, err
	}
	if err := s.executeHere(pq, q.Limit, out); err != nil {
		return nil, err
	}
	if len(out.Nodes) > 0 {
		return out, nil
	}
	for _, dc := range s.failoverOrder(pq.Service.Failover) {
		out.Failovers++
		remote := &rpc.PreparedQueryExecuteResponse{}
		args := &rpc.PreparedQueryExecuteRemote{Query: *pq, Limit: q.Limit,
			QueryOptions: rpc.QueryOptions{Datacenter: dc, AllowStale: q.AllowStale, MaxStale: q.MaxStale}}
		if err := s.forwardDC(ctx, dc, "PreparedQuery.ExecuteRemote", args, remote); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// One datacenter out of reach does not end the failover.
			continue
		}
		if len(remote.Nodes) > 0 {
			failovers := out.Failovers
			*out = *remote
			out.Failovers = failovers
			return out, nil
		}
	}
	return out, nil
}

// PreparedQueryExecuteRemote runs a query definition from another
// datacenter on this one's catalog (a failover).
func (s *localServer) PreparedQueryExecuteRemote(ctx context.Context, q *rpc.PreparedQueryExecuteRemote) (*rpc.PreparedQueryExecuteResponse, error) {
	out := &rpc.PreparedQueryExecuteResponse{}
	opts := q.QueryOptions
	opts.MinIndex = 0
	if here, err := s.read(ctx, &opts, "PreparedQuery.ExecuteRemote", q, out); !here || err != nil {
		return out, err
	}
	if err := s.readReady(ctx, &opts); err != nil {
		return nil, err
	}
	pq := q.Query
	return out, s.executeHere(&pq, q.Limit, out)
}

// executeHere fills out with the instances of pq's service in this
// datacenter that pass its filters and health rules, shuffled, at most
// limit of them (0: all).
func (s *localServer) executeHere(pq *catalog.PreparedQuery, limit int, out *rpc.PreparedQueryExecuteResponse) error {
	idx, nodes, err := s.store.CheckServiceNodes(nil, pq.Service.Service, nil, false)
	if err != nil {
		return err
	}
	kept := make([]catalog.CheckServiceNode, 0, len(nodes))
	for _, csn := range nodes {
		if pq.Service.Matches(csn) && pq.Service.Healthy(csn) {
			kept = append(kept, csn)
		}
	}
	rand.Shuffle(len(kept), func(i, j int) { kept[i], kept[j] = kept[j], kept[i] })
	if limit > 0 && len(kept) > limit {
		kept = kept[:limit]
	}
	out.Found, out.Service, out.DNS, out.Datacenter, out.Nodes = true, pq.Service.Service, pq.DNS, s.dc, kept
	out.Near = pq.Service.Near
	out.Index = max(idx, 1)
	s.fillMeta(&out.QueryMeta)
	return nil
}

// failoverOrder lists the datacenters a query fails over to: the NearestN
// nearest others (by round-trip time from this server), then the listed
// ones in order, each once, never this one.
func (s *localServer) failoverOrder(f catalog.QueryFailover) []string {
	var out []string
	add := func(dc string) {
		dc = strings.ToLower(dc)
		if dc != "" && !strings.EqualFold(dc, s.dc) && !slices.Contains(out, dc) {
			out = append(out, dc)
		}
	}
	if f.NearestN > 0 && s.wan != nil {
		n := 0
		for _, d := range s.wan.DatacenterRTTs() {
			if n == f.NearestN {
				break
			}
			if d.Datacenter != s.dc && d.Alive > 0 {
				add(d.Datacenter)
				n++
			}
		}
	}
	for _, dc := range f.Datacenters {
		add(dc)
	}
	return out
}

// queryTTL parses a query's DNS TTL (validated when it was stored).
func queryTTL(o catalog.QueryDNSOptions) time.Duration {
	d, err := time.ParseDuration(o.TTL)
	if err != nil {
		return 0
	}
	return d
}

// errQueryNotFound answers an unknown query ID or name.
//
//lint:ignore ST1005 Consul's text.
var errQueryNotFound = errors.New("Query not found")
