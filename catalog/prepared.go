package catalog

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Prepared queries: named, stored service lookups with failover to other
// datacenters, as Consul's /v1/query. The catalog stores and finds them;
// running one (and failing over) is the server's job.

const tableQueries = "queries"

// PreparedQuery is a stored lookup. Field names are Consul's.
type PreparedQuery struct {
	// ID is a UUID the server assigns.
	ID string
	// Name, when set, is unique (case-insensitively) and how DNS asks for
	// the query: <name>.query.consul.
	Name string
	// Service is what the query looks up.
	Service ServiceQuery
	// DNS holds the answer's TTL.
	DNS QueryDNSOptions

	CreateIndex uint64
	ModifyIndex uint64
}

// ServiceQuery is the lookup of a prepared query.
type ServiceQuery struct {
	// Service is the service name. Required.
	Service string
	// Failover lists other datacenters to answer from when no instance
	// is healthy here.
	Failover QueryFailover
	// OnlyPassing leaves warning instances out (critical ones always are).
	OnlyPassing bool
	// Tags must all be on an instance; "!tag" must not be.
	Tags []string
	// NodeMeta and ServiceMeta must all match.
	NodeMeta    map[string]string
	ServiceMeta map[string]string
	// IgnoreCheckIDs are checks whose status does not count.
	IgnoreCheckIDs []string
	// Near sorts the answer by round-trip time from a node ("_agent":
	// the agent asking).
	Near string
}

// QueryFailover says where a query looks when no local instance is
// healthy: the NearestN nearest other datacenters (by round-trip time),
// then Datacenters in order.
type QueryFailover struct {
	NearestN    int
	Datacenters []string
}

// QueryDNSOptions are a query's DNS settings.
type QueryDNSOptions struct {
	// TTL is a duration ("10s"); empty uses the agent's service TTL.
	TTL string
}

// Validate checks a query before it is stored; errors wrap ErrInvalid and
// name the field.
func (q *PreparedQuery) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if err := validKey("Name", q.Name); err != nil {
		return err
	}
	if strings.ContainsAny(q.Name, ". ") {
		return bad("Name %q: a query name is one DNS label (no dots or spaces)", q.Name)
	}
	if strings.TrimSpace(q.Service.Service) == "" {
		return bad("Service.Service: missing service name")
	}
	if err := validKey("Service.Service", q.Service.Service); err != nil {
		return err
	}
	if q.Service.Failover.NearestN < 0 {
		return bad("Service.Failover.NearestN: must not be negative, got %d", q.Service.Failover.NearestN)
	}
	for i, dc := range q.Service.Failover.Datacenters {
		if strings.TrimSpace(dc) == "" {
			return bad("Service.Failover.Datacenters[%d]: empty datacenter name", i)
		}
	}
	for i, tag := range q.Service.Tags {
		if strings.TrimSpace(strings.TrimPrefix(tag, "!")) == "" {
			return bad("Service.Tags[%d]: empty tag", i)
		}
	}
	if q.DNS.TTL != "" {
		if d, err := time.ParseDuration(q.DNS.TTL); err != nil || d < 0 {
			return bad("DNS.TTL: %q is not a duration such as \"10s\"", q.DNS.TTL)
		}
	}
	return nil
}

func queriesTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableQueries,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "ID", Lowercase: true},
			},
			indexName: {
				Name:         indexName,
				Unique:       true,
				AllowMissing: true,
				Indexer:      &memdb.StringFieldIndex{Field: "Name", Lowercase: true},
			},
		},
	}
}

// PreparedQueryRequest is the Raft command that creates, replaces or
// deletes a prepared query.
type PreparedQueryRequest struct {
	// Op is "set" (create or replace Query) or "delete" (Query.ID).
	Op    string
	Query *PreparedQuery
	// Datacenter, when another than the receiving server's, makes it
	// forward the request there; the catalog ignores it.
	Datacenter string
	WriteRequest
}

// Prepared query operations.
const (
	QuerySet    = "set"
	QueryDelete = "delete"
)

// ApplyPreparedQuery runs a PreparedQueryRequest at index idx. A name
// another query holds, or a delete of an unknown ID, is ErrInvalid or
// ErrNotFound, and nothing is written.
func (s *Store) ApplyPreparedQuery(idx uint64, req *PreparedQueryRequest) error {
	if req.Query == nil || req.Query.ID == "" {
		return fmt.Errorf("%w: prepared query: missing ID", ErrInvalid)
	}
	return s.write(func(tx *memdb.Txn) error {
		existing, err := tx.First(tableQueries, indexID, req.Query.ID)
		if err != nil {
			return err
		}
		switch req.Op {
		case QueryDelete:
			if existing == nil {
				return fmt.Errorf("%w: prepared query %q", ErrNotFound, req.Query.ID)
			}
			if err := tx.Delete(tableQueries, existing); err != nil {
				return err
			}
		case QuerySet:
			if err := req.Query.Validate(); err != nil {
				return err
			}
			q := *req.Query
			if q.Name != "" {
				other, err := tx.First(tableQueries, indexName, q.Name)
				if err != nil {
					return err
				}
				if other != nil && other.(*PreparedQuery).ID != q.ID {
					return fmt.Errorf("%w: Name %q: another prepared query has it", ErrInvalid, q.Name)
				}
			}
			q.CreateIndex, q.ModifyIndex = idx, idx
			if existing != nil {
				q.CreateIndex = existing.(*PreparedQuery).CreateIndex
			}
			if err := tx.Insert(tableQueries, &q); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: prepared query op %q", ErrInvalid, req.Op)
		}
		return setIndex(tx, tableQueries, idx)
	})
}

// PreparedQuery returns the query with the ID, else the one with the name
// (case-insensitively), else nil.
func (s *Store) PreparedQuery(ws memdb.WatchSet, idOrName string) (uint64, *PreparedQuery, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	idx := maxIndex(tx, tableQueries)
	for _, index := range []string{indexID, indexName} {
		ch, raw, err := tx.FirstWatch(tableQueries, index, idOrName)
		if err != nil {
			return 0, nil, err
		}
		addWatch(ws, ch)
		if raw != nil {
			return idx, raw.(*PreparedQuery), nil
		}
	}
	return idx, nil, nil
}

// PreparedQueries lists every query, by ID.
func (s *Store) PreparedQueries(ws memdb.WatchSet) (uint64, []*PreparedQuery, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	it, err := tx.Get(tableQueries, indexID)
	if err != nil {
		return 0, nil, err
	}
	addWatch(ws, it.WatchCh())
	var out []*PreparedQuery
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*PreparedQuery))
	}
	return maxIndex(tx, tableQueries), out, nil
}

// Matches reports whether an instance passes the query's filters (tags,
// meta), health aside.
func (q *ServiceQuery) Matches(csn CheckServiceNode) bool {
	for _, tag := range q.Tags {
		want := !strings.HasPrefix(tag, "!")
		if hasTagFold(csn.Service.Tags, strings.TrimPrefix(tag, "!")) != want {
			return false
		}
	}
	for k, v := range q.NodeMeta {
		if csn.Node.Meta[k] != v {
			return false
		}
	}
	for k, v := range q.ServiceMeta {
		if csn.Service.Meta[k] != v {
			return false
		}
	}
	return true
}

// Healthy reports whether an instance may be in the query's answer: no
// critical check (nor warning with OnlyPassing), IgnoreCheckIDs aside.
func (q *ServiceQuery) Healthy(csn CheckServiceNode) bool {
	for _, c := range csn.Checks {
		if containsFold(q.IgnoreCheckIDs, c.CheckID) {
			continue
		}
		switch c.Status {
		case HealthCritical:
			return false
		case HealthWarning:
			if q.OnlyPassing {
				return false
			}
		}
	}
	return true
}

func hasTagFold(tags []string, tag string) bool { return containsFold(tags, tag) }

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
