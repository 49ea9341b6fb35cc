package catalog

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableNodes    = "nodes"
	tableServices = "services"
	tableChecks   = "checks"
	tableIndex    = "index"
)

// Index names.
const (
	indexID          = "id"
	indexUUID        = "uuid"
	indexService     = "service"
	indexNodeService = "node_service"
	indexStatus      = "status"
	indexAddress     = "address"
	indexName        = "name"
)

// serviceIndexPrefix prefixes the per-service rows of the index table. Those
// rows outlive the service, so a watcher of a deleted service still sees its
// index move forward.
const serviceIndexPrefix = "service."

// IndexEntry is one row of the index table: the Raft index of the last
// change to a table or to one service's rows.
type IndexEntry struct {
	Key   string
	Value uint64
}

func schema() *memdb.DBSchema {
	db := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range []*memdb.TableSchema{
		nodesTableSchema(),
		servicesTableSchema(),
		checksTableSchema(),
		indexTableSchema(),
		queriesTableSchema(),
		autopilotTableSchema(),
	} {
		db.Tables[t.Name] = t
	}
	if err := db.Validate(); err != nil {
		panic(fmt.Sprintf("catalog: invalid schema: %v", err)) // programmer error
	}
	return db
}

func nodesTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableNodes,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "Node", Lowercase: true},
			},
			indexUUID: {
				Name:         indexUUID,
				AllowMissing: true,
				Unique:       true,
				Indexer:      &memdb.StringFieldIndex{Field: "ID", Lowercase: true},
			},
			indexAddress: {
				Name:         indexAddress,
				AllowMissing: true,
				Indexer:      addressIndex{field: func(o any) string { return o.(*Node).Address }},
			},
		},
	}
}

func servicesTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableServices,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:   indexID,
				Unique: true,
				Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Node", Lowercase: true},
					&memdb.StringFieldIndex{Field: "ID"},
				}},
			},
			indexService: {
				Name:    indexService,
				Indexer: &memdb.StringFieldIndex{Field: "Service", Lowercase: true},
			},
			indexAddress: {
				Name:         indexAddress,
				AllowMissing: true,
				Indexer:      addressIndex{field: func(o any) string { return o.(*Service).Address }},
			},
		},
	}
}

func checksTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableChecks,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:   indexID,
				Unique: true,
				Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Node", Lowercase: true},
					&memdb.StringFieldIndex{Field: "CheckID"},
				}},
			},
			indexNodeService: {
				Name:    indexNodeService,
				Indexer: nodeServiceIndex{},
			},
			indexService: {
				Name:         indexService,
				AllowMissing: true,
				Indexer:      &memdb.StringFieldIndex{Field: "ServiceName", Lowercase: true},
			},
			indexStatus: {
				Name:    indexStatus,
				Indexer: &memdb.StringFieldIndex{Field: "Status"},
			},
		},
	}
}

func indexTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableIndex,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "Key", Lowercase: true},
			},
		},
	}
}

// nodeServiceIndex indexes checks by node (case-insensitively) and service
// ID, node-level checks under the empty service ID, so both a service's
// checks and a node's own are an exact lookup: a host with thousands of
// service checks does not make every health query on its node walk them.
type nodeServiceIndex struct{}

func (nodeServiceIndex) FromObject(obj any) (bool, []byte, error) {
	c, ok := obj.(*Check)
	if !ok {
		return false, nil, fmt.Errorf("node/service index: %T is not a check", obj)
	}
	return true, nodeServiceKey(c.Node, c.ServiceID), nil
}

func (nodeServiceIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("node/service index: want 2 arguments, got %d", len(args))
	}
	node, ok1 := args[0].(string)
	svc, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("node/service index: arguments %v are not strings", args)
	}
	return nodeServiceKey(node, svc), nil
}

// nodeServiceKey is lower(node) NUL serviceID NUL: the terminators keep
// node "n1" from matching "n10", and node-level checks (empty service ID)
// from matching a service's.
func nodeServiceKey(node, service string) []byte {
	k := make([]byte, 0, len(node)+len(service)+2)
	k = append(k, strings.ToLower(node)...)
	k = append(k, 0)
	k = append(k, service...)
	return append(k, 0)
}

// addressIndex indexes rows by the IP address in a string field, in its
// canonical form, so that "10.0.0.1" and "::ffff:10.0.0.1", or "2001:DB8::1"
// and "2001:db8:0::1", are one key. A field holding no IP (empty, or a
// hostname) is not indexed. Lookups take a netip.Addr.
type addressIndex struct {
	field func(obj any) string
}

func (x addressIndex) FromObject(obj any) (bool, []byte, error) {
	ip, err := netip.ParseAddr(x.field(obj))
	if err != nil {
		return false, nil, nil
	}
	return true, addressKey(ip), nil
}

func (addressIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("address index: want 1 argument, got %d", len(args))
	}
	ip, ok := args[0].(netip.Addr)
	if !ok || !ip.IsValid() {
		return nil, fmt.Errorf("address index: argument %v is not an IP address", args[0])
	}
	return addressKey(ip), nil
}

// addressKey is the index key of ip: IPv4-mapped IPv6 as IPv4, zone
// dropped, then a family byte (4 or 6) and the 4 or 16 address bytes.
// memdb finds non-unique keys by prefix; the family byte keeps an IPv4 key
// from being the prefix of an IPv6 one.
func addressKey(ip netip.Addr) []byte {
	ip = ip.Unmap().WithZone("")
	family := byte(6)
	if ip.Is4() {
		family = 4
	}
	return append([]byte{family}, ip.AsSlice()...)
}
