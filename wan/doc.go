// Package wan federates datacenters: the WAN gossip pool that the servers
// of every datacenter join, and the Router that turns a datacenter name
// into its live servers, nearest first, and forwards a request there.
//
// Pool is a gossip.Pool with Consul's WAN conventions: member names are
// "<node>.<dc>" (a node name need only be unique in its datacenter), only
// servers join, every member advertises its server RPC port, and the
// failure detector runs on memberlist's WAN timings (5 s probes, 3 s
// probe timeout, suspicion multiplier 6), which tolerate the latency and
// loss of links between sites. A datacenter cut off from the others is
// declared failed by them after roughly half a minute; until then a
// request to it fails on its own timeout and is retried on the next server.
//
// Router reads the pool's members and serf's network coordinates, which
// every probe ack refines, so "nearest" is measured, not configured:
//
//   - Servers(dc) lists dc's alive servers by estimated round-trip time
//     from this server, those without a coordinate yet last.
//   - Datacenters lists every datacenter with a server in the pool, by
//     the median round-trip time to its alive servers (the local one is
//     first: its median is the smallest), those with no alive server or
//     no coordinate last, by name. It is /v1/catalog/datacenters and the
//     order prepared queries fail over in (Failover.NearestN).
//   - Forward tries dc's servers in that order, at most MaxAttempts of
//     them, moving on only when the caller says the error means that
//     server could not answer; errors name the datacenter.
//
// The Router reads its members through the Membership interface, which a
// Pool satisfies; tests hand it members with chosen coordinates to check
// the ordering without depending on loopback timings.
package wan
