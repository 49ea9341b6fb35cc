package dns

import (
	"context"
	"net/netip"
	"time"

	"github.com/meshd/meshd/catalog"
)

// ServiceLookup names the instances a DNS question asks for.
type ServiceLookup struct {
	// Datacenter is the datacenter label of the name, or Config.Datacenter
	// when the name has none. Lower-cased, as all labels taken from names.
	Datacenter string
	// Service is the service name, lower-cased.
	Service string
	// Tag, lower-cased, restricts the answer to instances carrying it
	// (case-insensitively); "" means no tag filter.
	Tag string
}

// Resolver is what a Server reads the catalog through; the agent supplies
// it. Its methods are called concurrently, one call per question, and
// must honour ctx: it is cancelled when Shutdown gives up waiting.
//
// ReverseLookup answers PTR questions; an empty Reverse means nothing is
// at the address, an error makes the answer SERVFAIL. NameServers is
// asked only for the zones' own NS, SOA and ANY questions, never for
// service, node or negative answers; when it fails or returns none, those
// answers name ns.<domain> instead.
type Resolver interface {
	// ServiceInstances returns every instance of the service in the
	// datacenter, healthy or not, with their checks. Unknown service:
	// empty slice, nil error. The Server re-checks the tag and does the
	// health filtering itself, so returning extra instances is harmless.
	ServiceInstances(ctx context.Context, q ServiceLookup) ([]catalog.CheckServiceNode, error)
	// Node returns the node or nil when unknown.
	Node(ctx context.Context, datacenter, name string) (*catalog.Node, error)
	// ReverseLookup returns what in the local datacenter has address ip.
	ReverseLookup(ctx context.Context, ip netip.Addr) (Reverse, error)
	// NameServers returns the servers of the local datacenter.
	NameServers(ctx context.Context) ([]NameServer, error)
}

// QueryResolver is a Resolver that also runs prepared queries, for
// <name>.query[.<dc>].<domain>; without it such names are NXDOMAIN.
type QueryResolver interface {
	Resolver
	// PreparedQuery runs the query with that name (or ID) in datacenter
	// dc, failing over as the query says. An unknown query is the zero
	// QueryAnswer and a nil error.
	PreparedQuery(ctx context.Context, dc, name string) (QueryAnswer, error)
}

// QueryAnswer is what a prepared query found.
type QueryAnswer struct {
	// Found is false for an unknown query.
	Found bool
	// Service is the service the query looks up (for the TTL).
	Service string
	// Nodes are the healthy instances, as the query filtered them.
	Nodes []catalog.CheckServiceNode
	// Datacenter is where they are: another one after a failover.
	Datacenter string
	// TTL is the query's DNS TTL; 0 uses the service TTL.
	TTL time.Duration
}

// Reverse is what a reverse (PTR) lookup found at an address in the local
// datacenter.
type Reverse struct {
	// Nodes are the names of the nodes whose address it is.
	Nodes []string
	// Services are the names of the services with an instance that has
	// the address as its own (Service.Address).
	Services []string
}

// NameServer is a server of the local datacenter, named in NS and SOA
// records as <Node>.node.<dc>.<domain> with Address as its glue record.
type NameServer struct {
	Node    string
	Address netip.Addr
}
