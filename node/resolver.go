package node

import (
	"context"
	"net/netip"
	"strings"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/dns"
	"github.com/meshd/meshd/node/client"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// dnsResolver answers the DNS server through the catalog endpoints, with
// stale reads by default (dns_config.allow_stale): any server answers,
// unless it has not heard from the leader for longer than max_stale.
type dnsResolver struct {
	a *Agent
}

var (
	_ dns.ReusingResolver = dnsResolver{}
	_ dns.QueryResolver   = dnsResolver{}
)

func (r dnsResolver) ServiceInstances(ctx context.Context, q dns.ServiceLookup) ([]catalog.CheckServiceNode, error) {
	insts, _, err := r.ServiceInstancesFresh(ctx, q)
	return insts, err
}

// ServiceInstancesFresh lets DNS reuse what it built from an answer until
// the service changes. A client agent answers from its cache (when stale
// reads are allowed, the default), whose watch says when; a server from
// its own catalog, whose watch channels say when (or when the leader has
// been silent for longer than max_stale).
func (r dnsResolver) ServiceInstancesFresh(ctx context.Context, q dns.ServiceLookup) ([]catalog.CheckServiceNode, func() bool, error) {
	var tags []string
	if q.Tag != "" {
		tags = []string{q.Tag}
	}
	sq := &rpc.ServiceQuery{Service: q.Service, Tags: tags, QueryOptions: r.opts(q.Datacenter)}
	if c := r.a.cache; c != nil && sq.AllowStale {
		ans, _, err := c.Get(ctx, client.NewKey(q.Datacenter, q.Service, tags, false))
		if err != nil {
			return nil, nil, err
		}
		return ans.Nodes(), ans.Fresh, nil
	}
	if r.a.server != nil && r.a.server.srv != nil {
		if nodes, fresh, here, err := r.a.server.srv.LocalHealthService(ctx, sq); here {
			return nodes, fresh, err
		}
	}
	res, err := server.HealthServiceNodes.Call(ctx, r.a.servers, sq)
	if err != nil {
		return nil, nil, err
	}
	return res.Nodes, nil, nil
}

func (r dnsResolver) Node(ctx context.Context, datacenter, name string) (*catalog.Node, error) {
	res, err := server.NodeServices.Call(ctx, r.a.servers, &rpc.NodeQuery{Node: name, QueryOptions: r.opts(datacenter)})
	if err != nil {
		return nil, err
	}
	return res.Node, nil
}

func (r dnsResolver) ReverseLookup(ctx context.Context, ip netip.Addr) (dns.Reverse, error) {
	res, err := server.AddressOwners.Call(ctx, r.a.servers, &rpc.AddressQuery{Address: ip.String(), QueryOptions: r.opts("")})
	if err != nil {
		return dns.Reverse{}, err
	}
	var out dns.Reverse
	for _, n := range res.Nodes {
		out.Nodes = append(out.Nodes, n.Node)
	}
	seen := make(map[string]bool, len(res.Services))
	for _, s := range res.Services {
		if name := strings.ToLower(s.Service); !seen[name] {
			seen[name] = true
			out.Services = append(out.Services, s.Service)
		}
	}
	return out, nil
}

// PreparedQuery runs a prepared query for DNS (<name>.query[.<dc>]), with
// the DNS read options.
func (r dnsResolver) PreparedQuery(ctx context.Context, dc, name string) (dns.QueryAnswer, error) {
	res, err := server.PreparedQueryExecute.Call(ctx, r.a.servers, &rpc.PreparedQueryExecute{QueryIDOrName: name, QueryOptions: r.opts(dc)})
	if err != nil || !res.Found {
		return dns.QueryAnswer{}, err
	}
	return dns.QueryAnswer{Found: true, Service: res.Service, Nodes: res.Nodes, Datacenter: res.Datacenter, TTL: server.QueryTTL(res.DNS)}, nil
}

// NameServers are the alive servers of the datacenter as gossip sees
// them: every agent knows them without asking anyone.
func (r dnsResolver) NameServers(context.Context) ([]dns.NameServer, error) {
	if r.a.gossip == nil {
		return nil, nil
	}
	var out []dns.NameServer
	for _, m := range r.a.gossip.Servers(r.a.cfg.Datacenter) {
		out = append(out, dns.NameServer{Node: m.Name, Address: m.Addr})
	}
	return out, nil
}

// opts are the read options of DNS lookups in datacenter dc:
// dns_config.allow_stale and max_stale, as Consul's.
func (r dnsResolver) opts(dc string) rpc.QueryOptions {
	if strings.EqualFold(dc, r.a.cfg.Datacenter) {
		dc = ""
	}
	return rpc.QueryOptions{Datacenter: dc, AllowStale: r.a.cfg.DNS.AllowStale, MaxStale: r.a.cfg.DNS.MaxStale}
}
