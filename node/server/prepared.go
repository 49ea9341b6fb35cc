package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
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

// The prepared queries' methods.
var (
	// PreparedQueryApply creates, replaces or deletes a prepared query in
	// datacenter req.Datacenter. The caller chooses a new query's ID
	// (NewQueryID) before the call, so a retry on another server cannot
	// create it twice.
	PreparedQueryApply = rpc.Declare(&surface, "PreparedQuery.Apply", (*Server).preparedQueryApply)
	// PreparedQueryGet reads one query by ID; PreparedQueryList all.
	PreparedQueryGet  = rpc.Declare(&surface, "PreparedQuery.Get", (*Server).preparedQueryGet)
	PreparedQueryList = rpc.Declare(&surface, "PreparedQuery.List", (*Server).preparedQueryList)
	// PreparedQueryExecute runs a stored query in its datacenter.
	PreparedQueryExecute = rpc.Declare(&surface, "PreparedQuery.Execute", (*Server).preparedQueryExecute)
	// PreparedQueryExecuteRemote runs another datacenter's query
	// definition on this one's catalog (a failover).
	PreparedQueryExecuteRemote = rpc.Declare(&surface, "PreparedQuery.ExecuteRemote", (*Server).preparedQueryExecuteRemote)
)

func (s *Server) preparedQueryApply(ctx context.Context, req *catalog.PreparedQueryRequest) (*rpc.WriteResponse, error) {
	if req.Query == nil {
		return nil, fmt.Errorf("%w: prepared query: missing query", catalog.ErrInvalid)
	}
	if req.Op == catalog.QuerySet {
		if err := req.Query.Validate(); err != nil {
			return nil, err
		}
		NewQueryID(req) // when the caller did not choose it
	}
	return s.write(ctx, req.Datacenter, consensus.PreparedQueryType|consensus.IgnoreUnknownTypeFlag, req)
}

// NewQueryID gives a new query (set without an ID) its ID, where it
// enters the cluster, and returns the query's ID.
func NewQueryID(req *catalog.PreparedQueryRequest) string {
	if req.Query == nil {
		return ""
	}
	if req.Op == catalog.QuerySet && req.Query.ID == "" {
		req.Query.ID = uuid.NewString()
	}
	return req.Query.ID
}

func (s *Server) preparedQueryGet(ctx context.Context, q *rpc.PreparedQueryGet) (*rpc.PreparedQueriesResponse, error) {
	return query(s, ctx, &q.QueryOptions, q, func(ws memdb.WatchSet, out *rpc.PreparedQueriesResponse) (uint64, error) {
		idx, pq, err := s.store.PreparedQuery(ws, q.QueryID)
		out.Queries = nil
		if pq != nil {
			out.Queries = []*catalog.PreparedQuery{pq}
		}
		return idx, err
	})
}

func (s *Server) preparedQueryList(ctx context.Context, q *rpc.QueryOptions) (*rpc.PreparedQueriesResponse, error) {
	return query(s, ctx, q, q, func(ws memdb.WatchSet, out *rpc.PreparedQueriesResponse) (idx uint64, err error) {
		idx, out.Queries, err = s.store.PreparedQueries(ws)
		return idx, err
	})
}

// preparedQueryExecute runs a stored query, in datacenter q.Datacenter
// (forwarded there: the query must be stored there).
func (s *Server) preparedQueryExecute(ctx context.Context, q *rpc.PreparedQueryExecute) (*rpc.PreparedQueryExecuteResponse, error) {
	out := &rpc.PreparedQueryExecuteResponse{}
	opts := q.QueryOptions
	opts.MinIndex = 0 // executing does not block
	if here, err := s.read(ctx, &opts, q, out); !here || err != nil {
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
		if err := s.forwardDC(ctx, dc, PreparedQueryExecuteRemote.Name(), args, remote); err != nil {
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

// preparedQueryExecuteRemote runs a query definition from another
// datacenter on this one's catalog (a failover).
func (s *Server) preparedQueryExecuteRemote(ctx context.Context, q *rpc.PreparedQueryExecuteRemote) (*rpc.PreparedQueryExecuteResponse, error) {
	out := &rpc.PreparedQueryExecuteResponse{}
	opts := q.QueryOptions
	opts.MinIndex = 0
	if here, err := s.read(ctx, &opts, q, out); !here || err != nil {
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
func (s *Server) executeHere(pq *catalog.PreparedQuery, limit int, out *rpc.PreparedQueryExecuteResponse) error {
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
func (s *Server) failoverOrder(f catalog.QueryFailover) []string {
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

// QueryTTL parses a query's DNS TTL (validated when it was stored).
func QueryTTL(o catalog.QueryDNSOptions) time.Duration {
	d, err := time.ParseDuration(o.TTL)
	if err != nil {
		return 0
	}
	return d
}

// ErrQueryNotFound answers an unknown query ID or name.
//
//lint:ignore ST1005 Consul's text.
var ErrQueryNotFound = errors.New("Query not found")
