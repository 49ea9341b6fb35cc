package catalog

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Every query takes a watch set (nil when the caller does not block) and
// fills it with channels that close when the answer may have changed, plus
// the store's abandon channel. It returns the Raft index the answer reflects,
// never below 1, so that a blocking query with that index waits for a change.
//
// Returned rows are shared with the store: callers must not modify them.

func maxIndex(tx *memdb.Txn, keys ...string) uint64 {
	var max uint64 = 1
	for _, k := range keys {
		raw, err := tx.First(tableIndex, indexID, k)
		if err == nil && raw != nil && raw.(*IndexEntry).Value > max {
			max = raw.(*IndexEntry).Value
		}
	}
	return max
}

func (s *Store) watchAbandon(ws memdb.WatchSet) {
	if ws != nil {
		ws.Add(s.AbandonCh())
	}
}

func addWatch(ws memdb.WatchSet, ch <-chan struct{}) {
	if ws != nil {
		ws.Add(ch)
	}
}

// LastIndex is the highest index any catalog table has reached.
func (s *Store) LastIndex() uint64 {
	return maxIndex(s.readTxn(), tableNodes, tableServices, tableChecks)
}

// ServiceIndex is the index of the last change bearing on the service's
// instances or their health, and a channel that closes on the next one.
func (s *Store) serviceIndexWatch(tx *memdb.Txn, name string) (uint64, <-chan struct{}) {
	ch, raw, err := tx.FirstWatch(tableIndex, indexID, serviceIndexPrefix+strings.ToLower(name))
	if err != nil || raw == nil {
		return 1, ch
	}
	return max(raw.(*IndexEntry).Value, 1), ch
}

// Services lists every service name with the union of its instances' tags,
// sorted and without duplicates.
func (s *Store) Services(ws memdb.WatchSet) (uint64, map[string][]string, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	it, err := tx.Get(tableServices, indexID)
	if err != nil {
		return 0, nil, fmt.Errorf("services: %w", err)
	}
	addWatch(ws, it.WatchCh())
	tagSets := map[string]map[string]struct{}{}
	names := map[string]string{} // lower-case name → name as first stored
	for raw := it.Next(); raw != nil; raw = it.Next() {
		svc := raw.(*Service)
		key := strings.ToLower(svc.Service)
		if _, ok := names[key]; !ok {
			names[key] = svc.Service
			tagSets[key] = map[string]struct{}{}
		}
		for _, t := range svc.Tags {
			tagSets[key][t] = struct{}{}
		}
	}
	out := make(map[string][]string, len(names))
	for key, name := range names {
		tags := make([]string, 0, len(tagSets[key]))
		for t := range tagSets[key] {
			tags = append(tags, t)
		}
		sort.Strings(tags)
		out[name] = tags
	}
	return maxIndex(tx, tableServices), out, nil
}

// AllServiceNodes returns every instance with its node: what a filter on
// the service list is evaluated against.
func (s *Store) AllServiceNodes(ws memdb.WatchSet) (uint64, []ServiceNode, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	it, err := tx.Get(tableServices, indexID)
	if err != nil {
		return 0, nil, fmt.Errorf("services: %w", err)
	}
	addWatch(ws, it.WatchCh())
	nit, err := tx.Get(tableNodes, indexID)
	if err != nil {
		return 0, nil, fmt.Errorf("nodes: %w", err)
	}
	addWatch(ws, nit.WatchCh()) // node meta takes part in filters
	var out []ServiceNode
	for raw := it.Next(); raw != nil; raw = it.Next() {
		svc := raw.(*Service)
		node, err := tx.First(tableNodes, indexID, svc.Node)
		if err != nil {
			return 0, nil, fmt.Errorf("node lookup: %w", err)
		}
		if node != nil {
			out = append(out, ServiceNode{Node: node.(*Node), Service: svc})
		}
	}
	return maxIndex(tx, tableServices, tableNodes), out, nil
}

// instances returns the instances of a service carrying every tag in tags
// (case-insensitively). Tags are filtered while scanning the service's
// instances, as Consul does, rather than kept in an index of their own: an
// index entry costs about 500 bytes in go-memdb's radix trees, which at
// 100,000 instances was a quarter of a server's live heap.
func instances(tx *memdb.Txn, name string, tags []string) ([]*Service, error) {
	it, err := tx.Get(tableServices, indexService, name)
	if err != nil {
		return nil, fmt.Errorf("service instances: %w", err)
	}
	var out []*Service
next:
	for raw := it.Next(); raw != nil; raw = it.Next() {
		svc := raw.(*Service)
		for _, t := range tags {
			if !svc.HasTag(t) {
				continue next
			}
		}
		out = append(out, svc)
	}
	return out, nil
}

// ServiceNodes returns the instances of service name carrying all tags,
// with their nodes, healthy or not. Its index is the service's own.
func (s *Store) ServiceNodes(ws memdb.WatchSet, name string, tags []string) (uint64, []ServiceNode, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	idx, ch := s.serviceIndexWatch(tx, name)
	addWatch(ws, ch)
	svcs, err := instances(tx, name, tags)
	if err != nil {
		return 0, nil, err
	}
	out := make([]ServiceNode, 0, len(svcs))
	for _, svc := range svcs {
		node, err := tx.First(tableNodes, indexID, svc.Node)
		if err != nil {
			return 0, nil, fmt.Errorf("node lookup: %w", err)
		}
		if node == nil {
			continue // cannot happen: a node's services go with it
		}
		out = append(out, ServiceNode{Node: node.(*Node), Service: svc})
	}
	return idx, out, nil
}

// CheckServiceNodes returns the instances of service name carrying all
// tags, each with its node and the checks that bear on its health. With
// onlyPassing, instances with any warning or critical check are left out.
// Its index is the service's own: it moves when an instance, one of its
// checks, its node or a node-level check of its node changes, and on no
// other write.
func (s *Store) CheckServiceNodes(ws memdb.WatchSet, name string, tags []string, onlyPassing bool) (uint64, []CheckServiceNode, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	idx, ch := s.serviceIndexWatch(tx, name)
	addWatch(ws, ch)
	svcs, err := instances(tx, name, tags)
	if err != nil {
		return 0, nil, err
	}
	nodeChecks := map[string][]*Check{}
	out := make([]CheckServiceNode, 0, len(svcs))
	for _, svc := range svcs {
		raw, err := tx.First(tableNodes, indexID, svc.Node)
		if err != nil {
			return 0, nil, fmt.Errorf("node lookup: %w", err)
		}
		if raw == nil {
			continue
		}
		node := raw.(*Node)
		nchecks, ok := nodeChecks[node.Node]
		if !ok {
			nchecks, err = nodeLevelChecks(tx, node.Node)
			if err != nil {
				return 0, nil, err
			}
			nodeChecks[node.Node] = nchecks
		}
		checks := append([]*Check(nil), nchecks...)
		it, err := tx.Get(tableChecks, indexNodeService, svc.Node, svc.ID)
		if err != nil {
			return 0, nil, fmt.Errorf("check lookup: %w", err)
		}
		for r := it.Next(); r != nil; r = it.Next() {
			checks = append(checks, r.(*Check))
		}
		csn := CheckServiceNode{Node: node, Service: svc, Checks: checks}
		if onlyPassing && csn.AggregatedStatus() != HealthPassing {
			continue
		}
		out = append(out, csn)
	}
	return idx, out, nil
}

func nodeLevelChecks(tx *memdb.Txn, node string) ([]*Check, error) {
	it, err := tx.Get(tableChecks, indexNodeService, node, "")
	if err != nil {
		return nil, fmt.Errorf("check lookup: %w", err)
	}
	var out []*Check
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Check))
	}
	return out, nil
}

// Nodes lists every node, sorted by name.
func (s *Store) Nodes(ws memdb.WatchSet) (uint64, []*Node, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	it, err := tx.Get(tableNodes, indexID)
	if err != nil {
		return 0, nil, fmt.Errorf("nodes: %w", err)
	}
	addWatch(ws, it.WatchCh())
	var out []*Node
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Node))
	}
	return maxIndex(tx, tableNodes), out, nil
}

// NodeServices returns a node and its service instances; a nil node when
// there is no such node.
func (s *Store) NodeServices(ws memdb.WatchSet, name string) (uint64, *Node, []*Service, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	ch, raw, err := tx.FirstWatch(tableNodes, indexID, name)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("node lookup: %w", err)
	}
	addWatch(ws, ch)
	idx := maxIndex(tx, tableNodes, tableServices)
	if raw == nil {
		return idx, nil, nil, nil
	}
	node := raw.(*Node)
	it, err := nodeServices(tx, node.Node)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("services lookup: %w", err)
	}
	addWatch(ws, it.WatchCh())
	var svcs []*Service
	for r := it.Next(); r != nil; r = it.Next() {
		svcs = append(svcs, r.(*Service))
	}
	return idx, node, svcs, nil
}

// AddressOwners returns what has address ip: the nodes whose address it is
// and the service instances that have it as their own address. Addresses
// compare as IPs, not as strings.
func (s *Store) AddressOwners(ws memdb.WatchSet, ip netip.Addr) (uint64, []*Node, []*Service, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	idx := maxIndex(tx, tableNodes, tableServices)
	it, err := tx.Get(tableNodes, indexAddress, ip)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("nodes by address: %w", err)
	}
	addWatch(ws, it.WatchCh())
	var nodes []*Node
	for raw := it.Next(); raw != nil; raw = it.Next() {
		nodes = append(nodes, raw.(*Node))
	}
	it, err = tx.Get(tableServices, indexAddress, ip)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("services by address: %w", err)
	}
	addWatch(ws, it.WatchCh())
	var svcs []*Service
	for raw := it.Next(); raw != nil; raw = it.Next() {
		svcs = append(svcs, raw.(*Service))
	}
	return idx, nodes, svcs, nil
}

// NodeChecks returns every check on a node, node-level and service-level.
func (s *Store) NodeChecks(ws memdb.WatchSet, node string) (uint64, []*Check, error) {
	return s.checks(ws, indexID+"_prefix", node, "")
}

// ServiceChecks returns the checks of every instance of a service.
func (s *Store) ServiceChecks(ws memdb.WatchSet, service string) (uint64, []*Check, error) {
	return s.checks(ws, indexService, service)
}

// ChecksInState returns every check in state, or every check for
// HealthAny.
func (s *Store) ChecksInState(ws memdb.WatchSet, state HealthStatus) (uint64, []*Check, error) {
	if state == HealthAny {
		return s.checks(ws, indexID)
	}
	if !ValidStatus(state) {
		return 0, nil, fmt.Errorf("%w: state: unknown check state %q", ErrInvalid, state)
	}
	return s.checks(ws, indexStatus, state)
}

func (s *Store) checks(ws memdb.WatchSet, index string, args ...any) (uint64, []*Check, error) {
	s.watchAbandon(ws)
	tx := s.readTxn()
	it, err := tx.Get(tableChecks, index, args...)
	if err != nil {
		return 0, nil, fmt.Errorf("checks: %w", err)
	}
	addWatch(ws, it.WatchCh())
	var out []*Check
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Check))
	}
	return maxIndex(tx, tableChecks), out, nil
}

// Check returns one check, or nil.
func (s *Store) Check(node, checkID string) (*Check, error) {
	raw, err := s.readTxn().First(tableChecks, indexID, node, checkID)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*Check), nil
}

// Stats are the catalog's sizes, for metrics.
type Stats struct {
	Nodes, Services, Instances int
	// Checks counts checks by status.
	Checks map[HealthStatus]int
}

// Stats counts the catalog's nodes, services (distinct names, ignoring
// case), instances and checks by status. It walks every table: O(size),
// meant for a metrics scrape, not a hot path.
func (s *Store) Stats() (Stats, error) {
	tx := s.readTxn()
	out := Stats{Checks: map[HealthStatus]int{}}
	it, err := tx.Get(tableNodes, indexID)
	if err != nil {
		return out, fmt.Errorf("stats: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out.Nodes++
	}
	// By service name: a service's instances are adjacent, so each new
	// name (case-insensitively, as the index) is a new service.
	if it, err = tx.Get(tableServices, indexService); err != nil {
		return out, fmt.Errorf("stats: %w", err)
	}
	var prev string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out.Instances++
		if name := raw.(*Service).Service; out.Instances == 1 || !strings.EqualFold(name, prev) {
			out.Services++
			prev = name
		}
	}
	if it, err = tx.Get(tableChecks, indexID); err != nil {
		return out, fmt.Errorf("stats: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out.Checks[raw.(*Check).Status]++
	}
	return out, nil
}

// nodeServices iterates over a node's services: a prefix scan of the
// services' (node, ID) key, which needs no index of its own.
func nodeServices(tx *memdb.Txn, node string) (memdb.ResultIterator, error) {
	return tx.Get(tableServices, indexID+"_prefix", node, "")
}
