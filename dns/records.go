package dns

import (
	"net/netip"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/miekg/dns"
)

// SOA timers. They only matter to secondaries, which we do not support;
// MINIMUM is 0 so that negative answers are not cached.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
)

// maxNameLen is the longest name in presentation form (final dot
// included, no escapes) that fits the 255-octet wire limit.
const maxNameLen = 254

// soa is the zone's SOA, TTL 0 and MINIMUM 0. The serial is the time, as
// in Consul: nothing transfers the zone, so it only has to move forward.
func (s *Server) soa() *dns.SOA {
	return &dns.SOA{
		Hdr:     header(s.domain, dns.TypeSOA, 0),
		Ns:      "ns." + s.domain,
		Mbox:    "hostmaster." + s.domain,
		Serial:  uint32(time.Now().Unix()),
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  0,
	}
}

// serviceAddrRecords appends the A/AAAA records of insts matching qtype,
// one per distinct IP. Instances with hostnames count only when no
// instance has an IP: then the answer is one CNAME, since a CNAME can
// share its name with no other record.
func (s *Server) serviceAddrRecords(resp *dns.Msg, owner string, qtype uint16, insts []*catalog.CheckServiceNode) {
	seen := make(map[netip.Addr]struct{}, len(insts))
	var (
		host  string
		anyIP bool
	)
	for _, inst := range insts {
		addr := instanceAddress(inst)
		ip, ok := parseIP(addr)
		if !ok {
			if host == "" && validHostname(addr) {
				host = addr
			}
			continue
		}
		anyIP = true
		if !wantsAddr(qtype, ip) {
			continue
		}
		if _, dup := seen[ip]; dup {
			continue
		}
		seen[ip] = struct{}{}
		resp.Answer = append(resp.Answer, addrRR(owner, ip, s.serviceTTL))
	}
	if !anyIP && host != "" {
		resp.Answer = append(resp.Answer, cnameRR(owner, host, s.serviceTTL))
	}
}

// srvRecords appends one SRV record per instance, with the address
// records of their targets in the additional section.
func (s *Server) srvRecords(resp *dns.Msg, owner, dc string, insts []*catalog.CheckServiceNode) {
	extra := make(map[string]struct{}, len(insts))
	for _, inst := range insts {
		target, addr := s.srvTarget(inst, dc)
		if target == "" {
			continue
		}
		resp.Answer = append(resp.Answer, &dns.SRV{
			Hdr:      header(owner, dns.TypeSRV, s.serviceTTL),
			Priority: 1,
			Weight:   srvWeight(inst),
			Port:     clampUint16(inst.Service.Port),
			Target:   target,
		})
		if addr == nil {
			continue
		}
		if _, dup := extra[target]; !dup {
			extra[target] = struct{}{}
			resp.Extra = append(resp.Extra, addr)
		}
	}
}

// srvTarget picks the SRV target of inst and the record that resolves it
// (nil when none does): the instance's own address when it has one
// differing from its node's, else the node. "" means inst has no usable
// address.
func (s *Server) srvTarget(inst *catalog.CheckServiceNode, dc string) (string, dns.RR) {
	svcAddr, nodeAddr := inst.Service.Address, inst.Node.Address
	if svcAddr != "" && svcAddr != nodeAddr {
		if ip, ok := parseIP(svcAddr); ok {
			return s.addrTarget(ip, dc)
		}
		if validHostname(svcAddr) {
			return dns.Fqdn(svcAddr), nil
		}
		return "", nil
	}
	ip, isIP := parseIP(nodeAddr)
	if validLabel(inst.Node.Node) {
		target := inst.Node.Node + ".node." + dc + "." + s.domain
		if len(target) <= maxNameLen {
			switch {
			case isIP:
				return target, addrRR(target, ip, s.serviceTTL)
			case validHostname(nodeAddr):
				return target, cnameRR(target, nodeAddr, s.serviceTTL)
			}
			return "", nil
		}
	}
	if isIP {
		return s.addrTarget(ip, dc)
	}
	return "", nil
}

// addrTarget is the <hex-ip>.addr.<dc>.<domain> target of ip.
func (s *Server) addrTarget(ip netip.Addr, dc string) (string, dns.RR) {
	target := hexAddrLabel(ip) + ".addr." + dc + "." + s.domain
	if len(target) > maxNameLen {
		return "", nil
	}
	return target, addrRR(target, ip, s.serviceTTL)
}

// srvWeight is the instance's weight for its current state; unset weights
// (both zero) are Consul's defaults.
func srvWeight(inst *catalog.CheckServiceNode) uint16 {
	w := inst.Service.Weights
	if w == (catalog.Weights{}) {
		w = catalog.DefaultWeights
	}
	if inst.AggregatedStatus() == catalog.HealthWarning {
		return clampUint16(w.Warning)
	}
	return clampUint16(w.Passing)
}

func clampUint16(v int) uint16 {
	return uint16(min(max(v, 0), 0xFFFF))
}

// instanceAddress is where inst is reached: its own address, else its
// node's.
func instanceAddress(inst *catalog.CheckServiceNode) string {
	if inst.Service.Address != "" {
		return inst.Service.Address
	}
	return inst.Node.Address
}

// parseIP parses an IP address, IPv4-mapped IPv6 as IPv4, zone dropped.
func parseIP(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// wantsAddr reports whether a question of type qtype is answered by an
// address record for ip.
func wantsAddr(qtype uint16, ip netip.Addr) bool {
	switch qtype {
	case dns.TypeANY:
		return true
	case dns.TypeA:
		return ip.Is4()
	case dns.TypeAAAA:
		return ip.Is6()
	}
	return false
}

func header(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// addrRR is the A or AAAA record of ip.
func addrRR(name string, ip netip.Addr, ttl uint32) dns.RR {
	if ip.Is4() {
		return &dns.A{Hdr: header(name, dns.TypeA, ttl), A: ip.AsSlice()}
	}
	return &dns.AAAA{Hdr: header(name, dns.TypeAAAA, ttl), AAAA: ip.AsSlice()}
}

// cnameRR points name at host, a validHostname.
func cnameRR(name, host string, ttl uint32) dns.RR {
	return &dns.CNAME{Hdr: header(name, dns.TypeCNAME, ttl), Target: dns.Fqdn(host)}
}
