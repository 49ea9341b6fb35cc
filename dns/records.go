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

// soa is the SOA of zone z naming mname as its primary server, TTL 0 and
// MINIMUM 0. The serial is the time, as in Consul: nothing transfers the
// zone, so it only has to move forward.
func (s *Server) soa(z *zone, mname string) *dns.SOA {
	return &dns.SOA{
		Hdr:     header(z.name, dns.TypeSOA, 0),
		Ns:      mname,
		Mbox:    z.mbox,
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
func serviceAddrRecords(resp *dns.Msg, owner string, qtype uint16, ttl uint32, insts []*catalog.CheckServiceNode) {
	seen := make(map[netip.Addr]struct{}, len(insts))
	slab := newRRSlab(len(insts))
	if resp.Answer == nil {
		resp.Answer = make([]dns.RR, 0, len(insts))
	}
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
		resp.Answer = append(resp.Answer, slab.addr(owner, ip, ttl))
	}
	if !anyIP && host != "" {
		resp.Answer = append(resp.Answer, cnameRR(owner, host, ttl))
	}
}

// srvRecords appends one SRV record per instance, with the address
// records of their targets in the additional section, all with TTL ttl.
func (s *Server) srvRecords(resp *dns.Msg, owner string, z *zone, dc string, ttl uint32, insts []*catalog.CheckServiceNode) {
	extra := make(map[string]struct{}, len(insts))
	slab := newRRSlab(len(insts))
	if resp.Answer == nil {
		resp.Answer = make([]dns.RR, 0, len(insts))
	}
	if resp.Extra == nil {
		resp.Extra = make([]dns.RR, 0, len(insts)+1) // +1: the OPT record
	}
	for _, inst := range insts {
		target, addr := s.srvTarget(slab, inst, z, dc, ttl)
		if target == "" {
			continue
		}
		resp.Answer = append(resp.Answer, slab.srv(owner, inst, target, ttl))
		if addr == nil {
			continue
		}
		if _, dup := extra[target]; !dup {
			extra[target] = struct{}{}
			resp.Extra = append(resp.Extra, addr)
		}
	}
}

// srvRR is the SRV record of inst with target.
func srvRR(owner string, inst *catalog.CheckServiceNode, target string, ttl uint32) dns.SRV {
	return dns.SRV{
		Hdr:      header(owner, dns.TypeSRV, ttl),
		Priority: 1,
		Weight:   srvWeight(inst),
		Port:     clampUint16(inst.Service.Port),
		Target:   target,
	}
}

// srvTarget picks the SRV target of inst, under zone z, and the record
// that resolves it (nil when none does), taken from slab: the instance's
// own address when it has one differing from its node's, else the node.
// "" means inst has no usable address.
func (s *Server) srvTarget(slab *rrSlab, inst *catalog.CheckServiceNode, z *zone, dc string, ttl uint32) (string, dns.RR) {
	svcAddr, nodeAddr := inst.Service.Address, inst.Node.Address
	if svcAddr != "" && svcAddr != nodeAddr {
		if ip, ok := parseIP(svcAddr); ok {
			return addrTarget(slab, ip, z, dc, ttl)
		}
		if validHostname(svcAddr) {
			return dns.Fqdn(svcAddr), nil
		}
		return "", nil
	}
	ip, isIP := parseIP(nodeAddr)
	if validLabel(inst.Node.Node) {
		target := inst.Node.Node + ".node." + dc + "." + z.name
		if len(target) <= maxNameLen {
			switch {
			case isIP:
				return target, slab.addr(target, ip, ttl)
			case validHostname(nodeAddr):
				return target, cnameRR(target, nodeAddr, ttl)
			}
			return "", nil
		}
	}
	if isIP {
		return addrTarget(slab, ip, z, dc, ttl)
	}
	return "", nil
}

// addrTarget is the <hex-ip>.addr.<dc>.<zone> target of ip.
func addrTarget(slab *rrSlab, ip netip.Addr, z *zone, dc string, ttl uint32) (string, dns.RR) {
	target := hexAddrLabel(ip) + ".addr." + dc + "." + z.name
	if len(target) > maxNameLen {
		return "", nil
	}
	return target, slab.addr(target, ip, ttl)
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

// rrSlab hands out the A, AAAA and SRV records of one answer from arrays
// sized for it, so that an answer of n records costs a few allocations
// rather than two or three per record: service answers are the hot path.
// Records stay valid after the slab is dropped. Not safe for concurrent
// use.
type rrSlab struct {
	n    int // records the answer may hold of each kind
	a    []dns.A
	aaaa []dns.AAAA
	srvs []dns.SRV
	ip4  []byte
	ip6  []byte
}

// newRRSlab returns a slab for answers of up to n records of each kind;
// it allocates only when asked for records.
func newRRSlab(n int) *rrSlab {
	return &rrSlab{n: max(n, 1)}
}

// grow returns s with room for one more element: s itself, or a new
// array when s is full. The records already handed out keep their array.
func grow[T any](s []T, n int) []T {
	if len(s) < cap(s) {
		return s
	}
	return make([]T, 0, n)
}

// addr is addrRR from the slab.
func (sl *rrSlab) addr(name string, ip netip.Addr, ttl uint32) dns.RR {
	if ip.Is4() {
		b := ip.As4()
		if cap(sl.ip4)-len(sl.ip4) < 4 {
			sl.ip4 = make([]byte, 0, 4*sl.n)
		}
		start := len(sl.ip4)
		sl.ip4 = append(sl.ip4, b[:]...)
		sl.a = grow(sl.a, sl.n)
		sl.a = append(sl.a, dns.A{Hdr: header(name, dns.TypeA, ttl), A: sl.ip4[start:len(sl.ip4):len(sl.ip4)]})
		return &sl.a[len(sl.a)-1]
	}
	b := ip.As16()
	if cap(sl.ip6)-len(sl.ip6) < 16 {
		sl.ip6 = make([]byte, 0, 16*sl.n)
	}
	start := len(sl.ip6)
	sl.ip6 = append(sl.ip6, b[:]...)
	sl.aaaa = grow(sl.aaaa, sl.n)
	sl.aaaa = append(sl.aaaa, dns.AAAA{Hdr: header(name, dns.TypeAAAA, ttl), AAAA: sl.ip6[start:len(sl.ip6):len(sl.ip6)]})
	return &sl.aaaa[len(sl.aaaa)-1]
}

// srv is srvRR from the slab.
func (sl *rrSlab) srv(owner string, inst *catalog.CheckServiceNode, target string, ttl uint32) dns.RR {
	sl.srvs = grow(sl.srvs, sl.n)
	sl.srvs = append(sl.srvs, srvRR(owner, inst, target, ttl))
	return &sl.srvs[len(sl.srvs)-1]
}
