package node

import (
	"context"
	"strings"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/dns"
	"github.com/meshd/meshd/node/rpc"
)

// dnsResolver answers the DNS server through the catalog endpoints with
// stale reads, as Consul's allow_stale default does: any server answers.
type dnsResolver struct {
	a *Agent
}

var _ dns.Resolver = dnsResolver{}

func (r dnsResolver) ServiceInstances(ctx context.Context, q dns.ServiceLookup) ([]catalog.CheckServiceNode, error) {
	if !strings.EqualFold(q.Datacenter, r.a.cfg.Datacenter) {
		return nil, nil // other datacenters arrive with federation
	}
	var tags []string
	if q.Tag != "" {
		tags = []string{q.Tag}
	}
	res, err := r.a.server.HealthServiceNodes(ctx, &rpc.ServiceQuery{
		Service: q.Service, Tags: tags, QueryOptions: rpc.QueryOptions{AllowStale: true},
	})
	if err != nil {
		return nil, err
	}
	return res.Nodes, nil
}

func (r dnsResolver) Node(ctx context.Context, datacenter, name string) (*catalog.Node, error) {
	if !strings.EqualFold(datacenter, r.a.cfg.Datacenter) {
		return nil, nil
	}
	res, err := r.a.server.NodeServices(ctx, &rpc.NodeQuery{Node: name, QueryOptions: rpc.QueryOptions{AllowStale: true}})
	if err != nil {
		return nil, err
	}
	return res.Node, nil
}
