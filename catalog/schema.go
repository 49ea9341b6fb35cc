package catalog

import (
	"fmt"

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
	indexNode        = "node"
	indexService     = "service"
	indexServiceTag  = "service_tag"
	indexNodeService = "node_service"
	indexStatus      = "status"
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
			indexNode: {
				Name:    indexNode,
				Indexer: &memdb.StringFieldIndex{Field: "Node", Lowercase: true},
			},
			indexService: {
				Name:    indexService,
				Indexer: &memdb.StringFieldIndex{Field: "Service", Lowercase: true},
			},
			indexServiceTag: {
				Name:         indexServiceTag,
				AllowMissing: true,
				Indexer: &memdb.CompoundMultiIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Service", Lowercase: true},
					&memdb.StringSliceFieldIndex{Field: "Tags", Lowercase: true},
				}},
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
			indexNode: {
				Name:    indexNode,
				Indexer: &memdb.StringFieldIndex{Field: "Node", Lowercase: true},
			},
			indexNodeService: {
				Name:         indexNodeService,
				AllowMissing: true,
				Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Node", Lowercase: true},
					&memdb.StringFieldIndex{Field: "ServiceID"},
				}},
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
