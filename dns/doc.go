// Package dns is meshd's DNS interface: a UDP and TCP server, built on
// github.com/miekg/dns, that answers service and node lookups under a
// configurable domain ("consul." by default) from a Resolver the agent
// supplies.
//
// Names, matched case-insensitively (dc defaults to Config.Datacenter):
//
//	<service>.service[.<dc>].<domain>           A, AAAA, SRV, ANY
//	<tag>.<service>.service[.<dc>].<domain>     the same, filtered by tag
//	_<service>._<tag>.service[.<dc>].<domain>   RFC 2782; _tcp and _udp mean no tag
//	<node>.node[.<dc>].<domain>                 A, AAAA, ANY
//	<hex-ip>.addr[.<dc>].<domain>               A, AAAA, ANY (SRV targets)
//	<domain>                                    SOA, NS
//
// Only healthy instances are handed out (catalog.CheckServiceNode.Healthy),
// shuffled for client-side load balancing. A name with no healthy instance
// is NXDOMAIN, a name without records of the asked type is NODATA; both
// carry the zone SOA with TTL and MINIMUM 0 so nobody caches the miss.
// Names outside the domain are REFUSED: there are no recursors yet.
//
// UDP answers fit 512 bytes, or the client's EDNS0 size capped at 4096;
// an answer that does not fit keeps as many whole records as fit and sets
// TC so the client retries over TCP, where it gets all of them. Consul
// instead silently cuts UDP answers to three records without TC.
//
// A/AAAA questions on a service whose healthy instances have hostnames
// rather than IPs get one CNAME (to a random one of those hostnames), and
// only when no instance has an IP address: several CNAMEs at one name, or
// CNAMEs next to A records, are not valid DNS (Consul sends them anyway).
// SRV answers keep every instance, with the hostname as target. A node
// whose address is a hostname is a CNAME to it, for every question type.
//
// Server is the component: New (no sockets), ServeUDP and ServeTCP (block
// until Shutdown), Shutdown. Handle answers one message without any
// socket; ServeDNS makes Server a miekg/dns Handler.
package dns
