package dns

import (
	"context"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// The reverse zones, whose names PTR questions ask.
const (
	reverse4Zone = "in-addr.arpa."
	reverse6Zone = "ip6.arpa."
)

// isReverseName reports whether name is in-addr.arpa. or ip6.arpa., or
// under one of them, case-insensitively.
func isReverseName(name string) bool {
	return inReverseZone(name, reverse4Zone) || inReverseZone(name, reverse6Zone)
}

func inReverseZone(name, zone string) bool {
	if len(name) < len(zone) || !strings.EqualFold(name[len(name)-len(zone):], zone) {
		return false
	}
	i := len(name) - len(zone) - 1
	return i < 0 || (name[i] == '.' && !escaped(name, i))
}

// parseReverseName returns the address a reverse name stands for: four
// decimal octets under in-addr.arpa., or 32 hex nibbles under ip6.arpa.,
// lowest first. Partial names (a network, not an address) and anything
// else do not parse. An IPv4-mapped IPv6 address stays IPv6, as asked.
func parseReverseName(name string) (netip.Addr, bool) {
	if inReverseZone(name, reverse4Zone) && len(name) > len(reverse4Zone) {
		return parseReverse4(name[:len(name)-len(reverse4Zone)-1])
	}
	if inReverseZone(name, reverse6Zone) && len(name) > len(reverse6Zone) {
		return parseReverse6(name[:len(name)-len(reverse6Zone)-1])
	}
	return netip.Addr{}, false
}

// parseReverse4 reads "d.c.b.a" as the address a.b.c.d.
func parseReverse4(s string) (netip.Addr, bool) {
	var b [4]byte
	for i := 3; i >= 0; i-- {
		label, rest, more := strings.Cut(s, ".")
		if more != (i > 0) {
			return netip.Addr{}, false
		}
		v, ok := parseOctet(label)
		if !ok {
			return netip.Addr{}, false
		}
		b[i], s = v, rest
	}
	return netip.AddrFrom4(b), true
}

// parseOctet reads a decimal 0-255 without leading zeros, as an address
// is written.
func parseOctet(s string) (byte, bool) {
	if len(s) == 0 || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}

// parseReverse6 reads 32 dot-separated hex nibbles, the lowest first.
func parseReverse6(s string) (netip.Addr, bool) {
	const nibbles = 32
	if len(s) != 2*nibbles-1 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i := range nibbles {
		if i < nibbles-1 && s[2*i+1] != '.' {
			return netip.Addr{}, false
		}
		v, ok := unhex(s[2*i])
		if !ok {
			return netip.Addr{}, false
		}
		if i%2 == 1 {
			v <<= 4
		}
		b[15-i/2] |= v
	}
	return netip.AddrFrom16(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// answerPTR answers q, a name under a reverse zone: one PTR record per
// node and per service the Resolver finds at the address; another type of
// question there is NODATA. A name that finds nothing, or is not a whole
// address, goes to the recursors when there are some (forward is true),
// else is NXDOMAIN.
func (s *Server) answerPTR(ctx context.Context, resp *dns.Msg, q dns.Question) (forward bool) {
	resp.Authoritative = true // unless forwarded
	if ip, ok := parseReverseName(q.Name); ok {
		rev, err := s.resolver.ReverseLookup(ctx, ip)
		if err != nil {
			s.logger.Warn("resolve reverse", "addr", ip.String(), "err", err)
			resp.Rcode = dns.RcodeServerFailure
			return false
		}
		s.ptrRecords(resp, q.Name, rev)
		if len(resp.Answer) > 0 {
			if q.Qtype != dns.TypePTR && q.Qtype != dns.TypeANY {
				s.nodata(resp, s.primary) // the name exists, with PTR records only
			}
			return false
		}
	}
	if len(s.recursors) > 0 {
		return true
	}
	s.nxdomain(resp, s.primary)
	return false
}

// ptrRecords appends a PTR record to <node>.node.<dc>.<domain> per node of
// rev and to <service>.service.<dc>.<domain> per service, once per name
// whatever its case, leaving out names that are not valid labels.
func (s *Server) ptrRecords(resp *dns.Msg, owner string, rev Reverse) {
	seen := make(map[string]struct{}, len(rev.Nodes)+len(rev.Services))
	add := func(name, kind string, ttl uint32) {
		target := name + "." + kind + "." + s.cfg.Datacenter + "." + s.primary.name
		if len(target) > maxNameLen {
			return
		}
		key := strings.ToLower(target)
		if _, dup := seen[key]; dup {
			return
		}
		seen[key] = struct{}{}
		resp.Answer = append(resp.Answer, &dns.PTR{Hdr: header(owner, dns.TypePTR, ttl), Ptr: target})
	}
	for _, node := range rev.Nodes {
		if validLabel(node) {
			add(node, "node", s.nodeTTL)
		}
	}
	for _, svc := range rev.Services {
		if validLabel(svc) {
			add(svc, "service", s.ttls.lookup(strings.ToLower(svc)))
		}
	}
}
