package dns

import (
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// zone is a domain the server is authoritative for: Config.Domain or
// Config.AltDomain. Names built for an answer go under the zone of its
// question.
type zone struct {
	name   string // canonical: lower case, final dot
	labels int
	ns     string // "ns.<name>": the SOA's MNAME when no name server is known
	mbox   string // "hostmaster.<name>": the SOA's RNAME
}

func newZone(domain string) *zone {
	name := dns.CanonicalName(domain)
	return &zone{name: name, labels: dns.CountLabel(name), ns: "ns." + name, mbox: "hostmaster." + name}
}

// match returns the part of name, a valid fully qualified name, left of
// the zone (without its final dot), and whether name is in the zone at
// all. It allocates nothing.
func (z *zone) match(name string) (string, bool) {
	if len(name) < len(z.name) || !strings.EqualFold(name[len(name)-len(z.name):], z.name) {
		return "", false
	}
	rest := name[:len(name)-len(z.name)]
	if rest == "" {
		return "", true
	}
	// The suffix must start a label: "xconsul." and "x\.consul." (one
	// label, its dot escaped) are not in "consul.".
	end := len(rest) - 1
	if rest[end] != '.' || escaped(rest, end) {
		return "", false
	}
	return rest[:end], true
}

// escaped reports whether s[i] is escaped: preceded by an odd number of
// backslashes.
func escaped(s string, i int) bool {
	n := 0
	for i--; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// nameKind is what a name under the domain asks about.
type nameKind int

const (
	kindInvalid nameKind = iota // not a name we serve: NXDOMAIN
	kindApex                    // the domain itself: SOA, NS
	kindService                 // [tag.]service.service[.dc], _service._tag.service[.dc]
	kindNode                    // node.node[.dc]
	kindAddr                    // hex-ip.addr[.dc]
	kindQuery                   // name.query[.dc]: a prepared query
)

// query is a parsed name under the domain.
type query struct {
	kind    nameKind
	service ServiceLookup // kindService
	// single asks for one record, picked by weight (kindService): the
	// name's leftmost label is "single".
	single bool
	node   string     // kindNode
	addr   netip.Addr // kindAddr
	query  string     // kindQuery: the prepared query's name or ID
	dc     string     // every kind but kindApex
}

// singleLabel, leftmost in a service name, asks for a single answer:
// single.web.service.consul, single.v1.web.service.consul,
// single._web._tcp.service.consul. A tag named "single" is therefore
// only reachable in the RFC 2782 form, _web._single.service.consul.
const singleLabel = "single"

// parseLabels parses the lower-cased labels of a name that sit left of the
// domain. Like Consul it looks for the kind label from the right, with at
// most one datacenter label after it.
func parseLabels(labels []string, defaultDC string) query {
	n := len(labels)
	if n == 0 {
		return query{kind: kindApex}
	}
	kindAt, dc := n-1, defaultDC
	if !isKindLabel(labels[kindAt]) {
		if n < 2 || !isKindLabel(labels[n-2]) {
			return query{}
		}
		kindAt, dc = n-2, labels[n-1]
	}
	parts := labels[:kindAt]
	switch labels[kindAt] {
	case "service":
		single := len(parts) > 1 && parts[0] == singleLabel
		if single {
			parts = parts[1:]
		}
		lookup, ok := parseService(parts)
		if !ok {
			return query{}
		}
		lookup.Datacenter = dc
		return query{kind: kindService, service: lookup, single: single, dc: dc}
	case "node":
		if len(parts) != 1 {
			return query{}
		}
		return query{kind: kindNode, node: parts[0], dc: dc}
	case "query":
		if len(parts) != 1 {
			return query{}
		}
		return query{kind: kindQuery, query: parts[0], dc: dc}
	case "addr":
		if len(parts) != 1 {
			return query{}
		}
		addr, ok := parseHexAddr(parts[0])
		if !ok {
			return query{}
		}
		return query{kind: kindAddr, addr: addr, dc: dc}
	}
	return query{}
}

func isKindLabel(l string) bool {
	return l == "service" || l == "node" || l == "addr" || l == "query"
}

// parseService reads the labels before "service": name, tag.name, or the
// RFC 2782 _name._tag where _tcp and _udp mean no tag.
func parseService(parts []string) (ServiceLookup, bool) {
	switch len(parts) {
	case 1:
		if parts[0] == "" {
			return ServiceLookup{}, false
		}
		return ServiceLookup{Service: parts[0]}, true
	case 2:
		first, second := parts[0], parts[1]
		if svc, ok := strings.CutPrefix(first, "_"); ok && strings.HasPrefix(second, "_") {
			tag := second[1:]
			if tag == "tcp" || tag == "udp" {
				tag = ""
			}
			if svc == "" || (tag == "" && second == "_") {
				return ServiceLookup{}, false
			}
			return ServiceLookup{Service: svc, Tag: tag}, true
		}
		if first == "" || second == "" {
			return ServiceLookup{}, false
		}
		return ServiceLookup{Service: second, Tag: first}, true
	}
	return ServiceLookup{}, false
}

// parseHexAddr decodes the label of an addr name: 8 hex digits for IPv4,
// 32 for IPv6, as hexAddrLabel writes them.
func parseHexAddr(label string) (netip.Addr, bool) {
	var buf [16]byte
	switch len(label) {
	case 8, 32:
	default:
		return netip.Addr{}, false
	}
	n, err := hex.Decode(buf[:], []byte(label))
	if err != nil {
		return netip.Addr{}, false
	}
	if n == 4 {
		return netip.AddrFrom4([4]byte(buf[:4])), true
	}
	return netip.AddrFrom16(buf), true
}

// hexAddrLabel is the label of the addr name of ip: its 4 or 16 bytes in
// hex, as Consul writes it.
func hexAddrLabel(ip netip.Addr) string {
	b := ip.AsSlice()
	return hex.EncodeToString(b)
}
