// Package dns is meshd's DNS interface: a UDP and TCP server, built on
// github.com/miekg/dns, that answers service and node lookups under a
// configurable domain ("consul." by default, plus an optional
// Config.AltDomain) from a Resolver the agent supplies, and forwards the
// rest to recursors when there are some.
//
// Names, matched case-insensitively (dc defaults to Config.Datacenter):
//
//	<service>.service[.<dc>].<domain>           A, AAAA, SRV, ANY
//	<tag>.<service>.service[.<dc>].<domain>     the same, filtered by tag
//	_<service>._<tag>.service[.<dc>].<domain>   RFC 2782; _tcp and _udp mean no tag
//	single.<any of the three above>             one record, picked by weight
//	<node>.node[.<dc>].<domain>                 A, AAAA, ANY
//	<hex-ip>.addr[.<dc>].<domain>               A, AAAA, ANY (SRV targets)
//	<query>.query[.<dc>].<domain>               A, AAAA, SRV, ANY (prepared queries)
//	<domain>                                    SOA, NS
//	<d.c.b.a>.in-addr.arpa                      PTR, ANY (reverse lookups)
//	<32 nibbles>.ip6.arpa                       PTR, ANY
//
// Only healthy instances are handed out (catalog.CheckServiceNode.Healthy),
// shuffled for client-side load balancing. A name with no healthy instance
// is NXDOMAIN, a name without records of the asked type is NODATA; both
// carry the zone SOA with TTL and MINIMUM 0 so nobody caches the miss.
//
// Single answers are server-side balancing for clients that always take
// the first record: a service name whose leftmost label is "single", or
// any question on a service one of whose selected healthy instances sets
// Service.DNS.Single, gets exactly one record. The instance is drawn with
// balance.Weighted among those that can answer the question (an IPv4
// address for A, IPv6 for AAAA, an SRV target for SRV), so an instance of
// weight 0 is never drawn while another has weight. Because
// single.web.service.<domain> asks for a single answer, a tag literally
// named "single" must be asked in the RFC 2782 form,
// _web._single.service.<domain>.
//
// Service records, and the additional records going with them, carry the
// service's TTL: Config.ServiceTTLs by exact name, else by longest "*"
// prefix, else Config.ServiceTTL. Node records, and PTR and NS records
// naming nodes, carry Config.NodeTTL.
//
// An answer to a question under Config.AltDomain builds its names (SRV
// targets, NS and SOA) under AltDomain; PTR targets are always under
// Config.Domain. The apex NS answer names the datacenter's servers
// (Resolver.NameServers) as <node>.node.<dc>.<domain>, sorted, with their
// address records as glue, and the apex SOA names the first of them. When
// the Resolver knows none, or fails, both name ns.<domain>, as the SOA of
// every negative answer does: negative answers ask the Resolver nothing
// beyond the lookup that failed.
//
// Reverse names (four decimal octets under in-addr.arpa, 32 hex nibbles
// under ip6.arpa) asked PTR or ANY get one PTR record per node and per
// service at the address (Resolver.ReverseLookup), as
// <node>.node.<dc>.<domain> and <service>.service.<dc>.<domain>; another
// question type there is NODATA. A reverse name that finds nothing, or a
// partial one, is forwarded to the recursors, or without recursors is
// NXDOMAIN.
//
// Questions outside the domains go to Config.Recursors, tried in order,
// each bounded by Config.RecursorTimeout, over the transport the client
// used (a UDP reply with TC is asked again over TCP). The first reply, of
// any rcode, is relayed without AA and with RA; when no recursor answers
// the reply is SERVFAIL. Without recursors such questions are REFUSED.
// With recursors every answer, ours included, sets RA.
//
// UDP answers fit 512 bytes, or the client's EDNS0 size capped at 4096;
// an answer that does not fit keeps as many whole records as fit and sets
// TC so the client retries over TCP, where it gets all of them. Relayed
// answers are fitted the same way. Consul instead silently cuts UDP
// answers to three records without TC.
//
// A/AAAA questions on a service whose healthy instances have hostnames
// rather than IPs get one CNAME (to a random one of those hostnames), and
// only when no instance has an IP address: several CNAMEs at one name, or
// CNAMEs next to A records, are not valid DNS (Consul sends them anyway).
// SRV answers keep every instance, with the hostname as target. A node
// whose address is a hostname is a CNAME to it, for every question type.
//
// Malformed messages get FORMERR, opcodes other than QUERY NOTIMP, and
// zone transfers REFUSED; no input makes the server panic or stop.
//
// Server is the component: New (no sockets), ServeUDP and ServeTCP (block
// until Shutdown), Shutdown. Handle answers one message without any
// socket; ServeDNS makes Server a miekg/dns Handler.
package dns
