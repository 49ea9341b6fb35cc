package node

import (
	"context"
	"strings"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/dns"
	"github.com/meshd/meshd/node/rpc"
)

// dnsResolver answers the DNS server through the catalog endpoints, with
// stale reads by default (dns_config.allow_stale): any server answers,
// unless it has not heard from the leader for longer than max_stale.
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
		Service: q.Service, Tags: tags, QueryOptions: r.opts(),
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
	res, err := r.a.server.NodeServices(ctx, &rpc.NodeQuery{Node: name, QueryOptions: r.opts()})
	if err != nil {
		return nil, err
	}
	return res.Node, nil
}

// opts are the read options of DNS lookups: dns_config.allow_stale and
// max_stale, as Consul's.
func (r dnsResolver) opts() rpc.QueryOptions {
	return rpc.QueryOptions{AllowStale: r.a.cfg.DNS.AllowStale, MaxStale: r.a.cfg.DNS.MaxStale}
}
