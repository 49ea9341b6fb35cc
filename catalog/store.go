package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
)

var (
	// ErrInvalid marks a write the catalog refuses as malformed; the
	// message names the field.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound marks a write that names a row that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrBadFilter marks a filter expression that does not parse or does
	// not fit the data it filters.
	ErrBadFilter = errors.New("bad filter")
	// ErrCASConflict marks a check-and-set write whose index no longer
	// matches what is stored.
	ErrCASConflict = errors.New("check-and-set index does not match")
)

// Store is the catalog state. Reads are safe from any number of goroutines
// at once and never block writes. Writes must come from one goroutine at a
// time (the Raft FSM), each with an index higher than the last.
type Store struct {
	state atomic.Pointer[storeState]
}

// storeState is one generation of the database; Restore replaces it whole.
type storeState struct {
	db        *memdb.MemDB
	abandonCh chan struct{}
}

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{}
	s.state.Store(newState())
	return s
}

func newState() *storeState {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(fmt.Sprintf("catalog: %v", err)) // schema is static: programmer error
	}
	return &storeState{db: db, abandonCh: make(chan struct{})}
}

// AbandonCh is closed when a restore replaces the state. Queries add it to
// their watch set themselves; it is exported for callers that hold results
// across calls.
func (s *Store) AbandonCh() <-chan struct{} {
	return s.state.Load().abandonCh
}

func (s *Store) readTxn() *memdb.Txn {
	return s.state.Load().db.Txn(false)
}

// write runs fn in one write transaction: all of it commits or none does.
func (s *Store) write(fn func(tx *memdb.Txn) error) error {
	tx := s.state.Load().db.Txn(true)
	defer tx.Abort()
	if err := fn(tx); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

// EnsureRegistration writes the node of req and, when given, its service
// instance and checks, all at index idx and all or nothing.
func (s *Store) EnsureRegistration(idx uint64, req *RegisterRequest) error {
	return s.write(func(tx *memdb.Txn) error {
		return ensureRegistrationTxn(tx, idx, req)
	})
}

// validKey refuses control characters in a name, ID or tag: go-memdb
// matches non-unique index lookups by prefix up to a NUL byte, so a name
// holding one could reach another node's rows.
func validKey(field, s string) error {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Errorf("%w: %s: must not contain control characters", ErrInvalid, field)
	}
	return nil
}

// Validate checks what a deregistration is made of: a node name, and keys
// without control characters. The FSM runs it first; the servers run it
// before a deregistration enters the log.
func (req *DeregisterRequest) Validate() error {
	if strings.TrimSpace(req.Node) == "" {
		return fmt.Errorf("%w: Node: missing node name", ErrInvalid)
	}
	for _, f := range []struct{ name, v string }{{"Node", req.Node}, {"ServiceID", req.ServiceID}, {"CheckID", req.CheckID}} {
		if err := validKey(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks what a registration is made of, before any state is
// read: names present, keys without control characters (go-memdb matches
// non-unique index lookups by prefix up to a NUL byte, so a name holding
// one could reach another node's rows), a port in range, check states
// known. The FSM runs it first on every registration; the servers run it
// before a registration enters the log. Errors wrap ErrInvalid and name
// the field.
func (req *RegisterRequest) Validate() error {
	if strings.TrimSpace(req.Node) == "" {
		return fmt.Errorf("%w: Node: missing node name", ErrInvalid)
	}
	if err := validKey("Node", req.Node); err != nil {
		return err
	}
	if s := req.Service; s != nil {
		for _, f := range []struct{ name, v string }{{"Service.Service", s.Service}, {"Service.ID", s.ID}} {
			if err := validKey(f.name, f.v); err != nil {
				return err
			}
		}
		for i, t := range s.Tags {
			if err := validKey(fmt.Sprintf("Service.Tags[%d]", i), t); err != nil {
				return err
			}
		}
		if strings.TrimSpace(s.Service) == "" {
			return fmt.Errorf("%w: Service.Service: missing service name", ErrInvalid)
		}
		if s.Port < 0 || s.Port > 65535 {
			return fmt.Errorf("%w: Service.Port: must be between 0 and 65535", ErrInvalid)
		}
	}
	for i, c := range req.Checks {
		if c == nil {
			continue
		}
		if err := validKey(fmt.Sprintf("Checks[%d].CheckID", i), c.CheckID); err != nil {
			return err
		}
		if err := validKey(fmt.Sprintf("Checks[%d].ServiceID", i), c.ServiceID); err != nil {
			return err
		}
		if strings.TrimSpace(c.CheckID) == "" {
			return fmt.Errorf("%w: Checks[%d].CheckID: missing check ID", ErrInvalid, i)
		}
		if c.Status != "" && !ValidStatus(c.Status) {
			return fmt.Errorf("%w: Checks[%d].Status: unknown check status %q", ErrInvalid, i, c.Status)
		}
	}
	return nil
}

func ensureRegistrationTxn(tx *memdb.Txn, idx uint64, req *RegisterRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	existing, err := tx.First(tableNodes, indexID, req.Node)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	if existing == nil || !req.SkipNodeUpdate {
		node := &Node{
			ID:              req.ID,
			Node:            req.Node,
			Address:         req.Address,
			Datacenter:      req.Datacenter,
			TaggedAddresses: req.TaggedAddresses,
			Meta:            req.NodeMeta,
		}
		if err := ensureNodeTxn(tx, idx, node); err != nil {
			return err
		}
	}
	if req.Service != nil {
		if err := ensureServiceTxn(tx, idx, req.Node, req.Service); err != nil {
			return err
		}
	}
	for i, chk := range req.Checks {
		if chk == nil {
			continue
		}
		if err := ensureCheckTxn(tx, idx, req.Node, chk, fmt.Sprintf("Checks[%d].", i)); err != nil {
			return err
		}
	}
	return nil
}

func ensureNodeTxn(tx *memdb.Txn, idx uint64, node *Node) error {
	if node.ID != "" {
		other, err := tx.First(tableNodes, indexUUID, node.ID)
		if err != nil {
			return fmt.Errorf("node id lookup: %w", err)
		}
		if other != nil && !strings.EqualFold(other.(*Node).Node, node.Node) {
			return fmt.Errorf("%w: ID: node ID %q is already used by node %q",
				ErrInvalid, node.ID, other.(*Node).Node)
		}
	}
	raw, err := tx.First(tableNodes, indexID, node.Node)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	n := *node
	if raw != nil {
		old := raw.(*Node)
		n.CreateIndex, n.ModifyIndex = old.CreateIndex, old.ModifyIndex
		if reflect.DeepEqual(&n, old) {
			return nil
		}
	} else {
		n.CreateIndex = idx
	}
	n.ModifyIndex = idx
	if err := tx.Insert(tableNodes, &n); err != nil {
		return fmt.Errorf("insert node: %w", err)
	}
	if err := setIndex(tx, tableNodes, idx); err != nil {
		return err
	}
	// A node's address and meta are part of every health answer for the
	// services it runs.
	return bumpNodeServices(tx, idx, n.Node)
}

// ensureServiceTxn writes one service instance of a registration that
// passed Validate.
func ensureServiceTxn(tx *memdb.Txn, idx uint64, nodeName string, svc *Service) error {
	node, err := tx.First(tableNodes, indexID, nodeName)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	if node == nil {
		return fmt.Errorf("%w: node %q", ErrNotFound, nodeName)
	}
	s := *svc
	s.Node = node.(*Node).Node
	if s.ID == "" {
		s.ID = s.Service
	}
	raw, err := tx.First(tableServices, indexID, s.Node, s.ID)
	if err != nil {
		return fmt.Errorf("service lookup: %w", err)
	}
	if raw != nil {
		old := raw.(*Service)
		s.CreateIndex, s.ModifyIndex = old.CreateIndex, old.ModifyIndex
		if reflect.DeepEqual(&s, old) {
			return nil
		}
		if !strings.EqualFold(old.Service, s.Service) {
			// The instance moved to another name: the old name's
			// watchers must see it go.
			if err := setServiceIndex(tx, old.Service, idx); err != nil {
				return err
			}
		}
	} else {
		s.CreateIndex = idx
	}
	s.ModifyIndex = idx
	if err := tx.Insert(tableServices, &s); err != nil {
		return fmt.Errorf("insert service: %w", err)
	}
	if err := setIndex(tx, tableServices, idx); err != nil {
		return err
	}
	if err := setServiceIndex(tx, s.Service, idx); err != nil {
		return err
	}
	// Checks carry their service's name and tags; keep them in step.
	return refreshServiceChecks(tx, idx, &s)
}

func refreshServiceChecks(tx *memdb.Txn, idx uint64, svc *Service) error {
	it, err := tx.Get(tableChecks, indexNodeService, svc.Node, svc.ID)
	if err != nil {
		return fmt.Errorf("check lookup: %w", err)
	}
	var updates []*Check
	for raw := it.Next(); raw != nil; raw = it.Next() {
		c := raw.(*Check)
		if c.ServiceName == svc.Service && slices.Equal(c.ServiceTags, svc.Tags) {
			continue
		}
		nc := *c
		nc.ServiceName, nc.ServiceTags, nc.ModifyIndex = svc.Service, svc.Tags, idx
		updates = append(updates, &nc)
	}
	for _, c := range updates {
		if err := tx.Insert(tableChecks, c); err != nil {
			return fmt.Errorf("insert check: %w", err)
		}
	}
	if len(updates) > 0 {
		return setIndex(tx, tableChecks, idx)
	}
	return nil
}

// ensureCheckTxn writes one check of a registration that passed
// Validate; field prefixes the field names its errors give ("Checks[1].").
func ensureCheckTxn(tx *memdb.Txn, idx uint64, nodeName string, chk *Check, field string) error {
	node, err := tx.First(tableNodes, indexID, nodeName)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	if node == nil {
		return fmt.Errorf("%w: node %q", ErrNotFound, nodeName)
	}
	c := *chk
	c.Node = node.(*Node).Node
	if c.Status == "" {
		c.Status = HealthCritical
	}
	if c.Name == "" {
		c.Name = c.CheckID
	}
	c.ServiceName, c.ServiceTags = "", nil
	if c.ServiceID != "" {
		raw, err := tx.First(tableServices, indexID, c.Node, c.ServiceID)
		if err != nil {
			return fmt.Errorf("service lookup: %w", err)
		}
		if raw == nil {
			return fmt.Errorf("%w: %sServiceID: no service %q on node %q", ErrNotFound, field, c.ServiceID, c.Node)
		}
		svc := raw.(*Service)
		c.ServiceName, c.ServiceTags = svc.Service, svc.Tags
	}
	raw, err := tx.First(tableChecks, indexID, c.Node, c.CheckID)
	if err != nil {
		return fmt.Errorf("check lookup: %w", err)
	}
	if raw != nil {
		old := raw.(*Check)
		c.CreateIndex, c.ModifyIndex = old.CreateIndex, old.ModifyIndex
		if reflect.DeepEqual(&c, old) {
			return nil
		}
		if old.ServiceID != c.ServiceID {
			// Moved between services, or between node and service level.
			if err := bumpCheckOwner(tx, idx, old); err != nil {
				return err
			}
		}
	} else {
		c.CreateIndex = idx
	}
	c.ModifyIndex = idx
	if err := tx.Insert(tableChecks, &c); err != nil {
		return fmt.Errorf("insert check: %w", err)
	}
	if err := setIndex(tx, tableChecks, idx); err != nil {
		return err
	}
	return bumpCheckOwner(tx, idx, &c)
}

// bumpCheckOwner raises the index of every service whose health the check
// bears on: its own service, or every service on its node for a node check.
func bumpCheckOwner(tx *memdb.Txn, idx uint64, c *Check) error {
	if c.ServiceID == "" {
		return bumpNodeServices(tx, idx, c.Node)
	}
	return setServiceIndex(tx, c.ServiceName, idx)
}

// UpdateCheckStatus sets the status and output of an existing check. A
// change to neither is a no-op that keeps the check's ModifyIndex.
func (s *Store) UpdateCheckStatus(idx uint64, u *CheckStatusUpdate) error {
	if !ValidStatus(u.Status) {
		return fmt.Errorf("%w: Status: unknown check status %q", ErrInvalid, u.Status)
	}
	return s.write(func(tx *memdb.Txn) error {
		raw, err := tx.First(tableChecks, indexID, u.Node, u.CheckID)
		if err != nil {
			return fmt.Errorf("check lookup: %w", err)
		}
		if raw == nil {
			return fmt.Errorf("%w: check %q on node %q", ErrNotFound, u.CheckID, u.Node)
		}
		c := *raw.(*Check)
		if c.Status == u.Status && c.Output == u.Output {
			return nil
		}
		c.Status, c.Output, c.ModifyIndex = u.Status, u.Output, idx
		if err := tx.Insert(tableChecks, &c); err != nil {
			return fmt.Errorf("insert check: %w", err)
		}
		if err := setIndex(tx, tableChecks, idx); err != nil {
			return err
		}
		return bumpCheckOwner(tx, idx, &c)
	})
}

// Deregister removes what req names: a check, a service instance with its
// checks, or a whole node. Removing something that is not there succeeds.
func (s *Store) Deregister(idx uint64, req *DeregisterRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	return s.write(func(tx *memdb.Txn) error {
		switch {
		case req.ServiceID != "" && req.CheckID != "":
			if err := deleteCheckTxn(tx, idx, req.Node, req.CheckID); err != nil {
				return err
			}
			return deleteServiceTxn(tx, idx, req.Node, req.ServiceID)
		case req.ServiceID != "":
			return deleteServiceTxn(tx, idx, req.Node, req.ServiceID)
		case req.CheckID != "":
			return deleteCheckTxn(tx, idx, req.Node, req.CheckID)
		default:
			return deleteNodeTxn(tx, idx, req.Node)
		}
	})
}

func deleteCheckTxn(tx *memdb.Txn, idx uint64, node, checkID string) error {
	raw, err := tx.First(tableChecks, indexID, node, checkID)
	if err != nil {
		return fmt.Errorf("check lookup: %w", err)
	}
	if raw == nil {
		return nil
	}
	if err := tx.Delete(tableChecks, raw); err != nil {
		return fmt.Errorf("delete check: %w", err)
	}
	if err := setIndex(tx, tableChecks, idx); err != nil {
		return err
	}
	return bumpCheckOwner(tx, idx, raw.(*Check))
}

func deleteServiceTxn(tx *memdb.Txn, idx uint64, node, serviceID string) error {
	raw, err := tx.First(tableServices, indexID, node, serviceID)
	if err != nil {
		return fmt.Errorf("service lookup: %w", err)
	}
	if raw == nil {
		return nil
	}
	svc := raw.(*Service)
	n, err := tx.DeleteAll(tableChecks, indexNodeService, svc.Node, svc.ID)
	if err != nil {
		return fmt.Errorf("delete service checks: %w", err)
	}
	if n > 0 {
		if err := setIndex(tx, tableChecks, idx); err != nil {
			return err
		}
	}
	if err := tx.Delete(tableServices, svc); err != nil {
		return fmt.Errorf("delete service: %w", err)
	}
	if err := setIndex(tx, tableServices, idx); err != nil {
		return err
	}
	return setServiceIndex(tx, svc.Service, idx)
}

func deleteNodeTxn(tx *memdb.Txn, idx uint64, name string) error {
	raw, err := tx.First(tableNodes, indexID, name)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	if raw == nil {
		return nil
	}
	node := raw.(*Node)
	var svcs []*Service
	it, err := nodeServices(tx, node.Node)
	if err != nil {
		return fmt.Errorf("service lookup: %w", err)
	}
	for r := it.Next(); r != nil; r = it.Next() {
		svcs = append(svcs, r.(*Service))
	}
	for _, svc := range svcs {
		if err := deleteServiceTxn(tx, idx, svc.Node, svc.ID); err != nil {
			return err
		}
	}
	n, err := tx.DeleteAll(tableChecks, indexID+"_prefix", node.Node, "")
	if err != nil {
		return fmt.Errorf("delete node checks: %w", err)
	}
	if n > 0 {
		if err := setIndex(tx, tableChecks, idx); err != nil {
			return err
		}
	}
	if err := tx.Delete(tableNodes, node); err != nil {
		return fmt.Errorf("delete node: %w", err)
	}
	return setIndex(tx, tableNodes, idx)
}

// bumpNodeServices raises the index of every service with an instance on
// the node.
func bumpNodeServices(tx *memdb.Txn, idx uint64, node string) error {
	it, err := nodeServices(tx, node)
	if err != nil {
		return fmt.Errorf("service lookup: %w", err)
	}
	var names []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		names = append(names, raw.(*Service).Service)
	}
	for _, name := range names {
		if err := setServiceIndex(tx, name, idx); err != nil {
			return err
		}
	}
	return nil
}

func setIndex(tx *memdb.Txn, key string, idx uint64) error {
	if err := tx.Insert(tableIndex, &IndexEntry{Key: key, Value: idx}); err != nil {
		return fmt.Errorf("update index %q: %w", key, err)
	}
	return nil
}

func setServiceIndex(tx *memdb.Txn, service string, idx uint64) error {
	return setIndex(tx, serviceIndexPrefix+strings.ToLower(service), idx)
}
