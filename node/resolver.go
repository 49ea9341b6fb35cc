package node

import (
	"context"
	"strings"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/dns"
)

// dnsResolver answers the DNS server from this server's catalog: stale
// reads, as Consul's allow_stale default does.
type dnsResolver struct {
	a *Agent
}

var _ dns.Resolver = dnsResolver{}

func (r dnsResolver) ServiceInstances(ctx context.Context, q dns.ServiceLookup) ([]catalog.CheckServiceNode, error) {
	if !strings.EqualFold(q.Datacenter, r.a.cfg.Datacenter) {
		return nil, nil // other datacenters arrive with federation
	}
	if err := r.a.readReady(ctx, queryOptions{stale: true}); err != nil {
		return nil, err
	}
	var tags []string
	if q.Tag != "" {
		tags = []string{q.Tag}
	}
	_, out, err := r.a.store.CheckServiceNodes(nil, q.Service, tags, false)
	return out, err
}

func (r dnsResolver) Node(ctx context.Context, datacenter, name string) (*catalog.Node, error) {
	if !strings.EqualFold(datacenter, r.a.cfg.Datacenter) {
		return nil, nil
	}
	if err := r.a.readReady(ctx, queryOptions{stale: true}); err != nil {
		return nil, err
	}
	_, n, _, err := r.a.store.NodeServices(nil, name)
	return n, err
}
