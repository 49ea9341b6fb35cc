package dns

import (
	"context"

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
type Resolver interface {
	// ServiceInstances returns every instance of the service in the
	// datacenter, healthy or not, with their checks. Unknown service:
	// empty slice, nil error. The Server re-checks the tag and does the
	// health filtering itself, so returning extra instances is harmless.
	ServiceInstances(ctx context.Context, q ServiceLookup) ([]catalog.CheckServiceNode, error)
	// Node returns the node or nil when unknown.
	Node(ctx context.Context, datacenter, name string) (*catalog.Node, error)
}
