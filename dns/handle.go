package dns

import (
	"cmp"
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/catalog/balance"
	"github.com/miekg/dns"
)

// maxUDPSize caps the EDNS0 UDP size we honour and advertise: larger
// datagrams fragment, and fragments get lost.
const maxUDPSize = dns.DefaultMsgSize // 4096

// Handle answers req, received over network ("udp" or "tcp"; anything not
// starting with "tcp" is treated as UDP and size-limited). It never
// returns nil and never panics, whatever req holds, and the reply always
// packs. Resolver calls and forwarding to recursors use ctx. Safe for
// concurrent use; Handle needs no Serve call, which makes it the entry
// point for tests and benchmarks.
func (s *Server) Handle(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	resp := new(dns.Msg)
	resp.Response = true
	if req == nil {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	resp.Id = req.Id
	if req.Response || req.Opcode < 0 || req.Opcode > 0xF {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	resp.Opcode = req.Opcode
	questionOK := len(req.Question) == 1 && validQuestionName(req.Question[0].Name)
	if questionOK {
		resp.Question = req.Question[:1:1] // shared, never written
	}
	if req.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	}
	resp.RecursionDesired = req.RecursionDesired
	resp.CheckingDisabled = req.CheckingDisabled
	resp.RecursionAvailable = len(s.recursors) > 0
	if !questionOK {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}

	reqOpt, opts := findOpt(req.Extra)
	if opts > 1 { // RFC 6891 6.1.1
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	if reqOpt != nil && reqOpt.Version() != 0 {
		resp.Rcode = dns.RcodeBadVers
		resp.SetEdns0(maxUDPSize, false)
		return resp
	}

	forwarded := s.answer(ctx, resp, req.Question[0])
	if forwarded {
		s.forward(ctx, resp, req, reqOpt, network)
	}

	switch {
	case reqOpt != nil:
		// DO is echoed only on relayed answers: ours are not signed.
		resp.SetEdns0(maxUDPSize, forwarded && reqOpt.Do())
	case resp.Rcode > 0xF:
		// An extended rcode relayed from a recursor needs an OPT record,
		// which a client without EDNS0 must not get.
		resp.Rcode = dns.RcodeServerFailure
		resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
	}
	s.fit(resp, network, reqOpt)
	return resp
}

// answer fills resp for question q, or returns true when q is to be
// forwarded to the recursors instead.
func (s *Server) answer(ctx context.Context, resp *dns.Msg, q dns.Question) (forward bool) {
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return false
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		resp.Rcode = dns.RcodeRefused // no zone transfers, ours or relayed
		return false
	}
	z, labels, ok := s.zoneLabels(q.Name)
	if !ok {
		if isReverseName(q.Name) {
			return s.answerPTR(ctx, resp, q)
		}
		if len(s.recursors) > 0 {
			return true
		}
		resp.Rcode = dns.RcodeRefused
		return false
	}
	resp.Authoritative = true

	pq := parseLabels(labels, s.cfg.Datacenter)
	switch pq.kind {
	case kindApex:
		s.answerApex(ctx, resp, q, z)
	case kindService:
		s.answerService(ctx, resp, q, z, pq)
	case kindNode:
		s.answerNode(ctx, resp, q, z, pq)
	case kindAddr:
		s.answerAddr(resp, q, z, pq)
	case kindQuery:
		s.answerQuery(ctx, resp, q, z, pq)
	default:
		s.nxdomain(resp, z)
	}
	return false
}

// zoneLabels finds the zone of name and returns it with the lower-cased
// labels of name left of it; false when name is in no zone of ours.
func (s *Server) zoneLabels(name string) (*zone, []string, bool) {
	for _, z := range s.zones {
		prefix, ok := z.match(name)
		if !ok {
			continue
		}
		if prefix == "" {
			return z, nil, true
		}
		labels := dns.SplitDomainName(prefix)
		for i, l := range labels {
			labels[i] = strings.ToLower(l)
		}
		return z, labels, true
	}
	return nil, nil, false
}

// answerApex answers the SOA and NS questions of the zone. Only these ask
// the Resolver for the name servers; negative answers name ns.<zone> in
// their SOA instead, so that they cost no extra lookup.
func (s *Server) answerApex(ctx context.Context, resp *dns.Msg, q dns.Question, z *zone) {
	wantSOA := q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY
	wantNS := q.Qtype == dns.TypeNS || q.Qtype == dns.TypeANY
	if !wantSOA && !wantNS {
		s.nodata(resp, z)
		return
	}
	servers := s.nameServers(ctx, z)
	if wantSOA {
		mname := z.ns
		if len(servers) > 0 {
			mname = servers[0].name
		}
		resp.Answer = append(resp.Answer, s.soa(z, mname))
	}
	if !wantNS {
		return
	}
	if len(servers) == 0 {
		resp.Answer = append(resp.Answer, &dns.NS{Hdr: header(z.name, dns.TypeNS, s.nodeTTL), Ns: z.ns})
		return
	}
	for _, ns := range servers {
		resp.Answer = append(resp.Answer, &dns.NS{Hdr: header(z.name, dns.TypeNS, s.nodeTTL), Ns: ns.name})
		if ns.addr.IsValid() {
			resp.Extra = append(resp.Extra, addrRR(ns.name, ns.addr, s.nodeTTL))
		}
	}
}

// nameServer is a NameServer as the NS record names it.
type nameServer struct {
	key  string // lower-case node name: sort and identity
	name string // <node>.node.<dc>.<zone>
	addr netip.Addr
}

// nameServers returns the datacenter's name servers with valid names,
// once per node name whatever its case, sorted by node name; nil when the
// Resolver fails or knows none, which the caller answers with ns.<zone>.
func (s *Server) nameServers(ctx context.Context, z *zone) []nameServer {
	list, err := s.resolver.NameServers(ctx)
	if err != nil {
		s.logger.Warn("resolve name servers", "err", err)
		return nil
	}
	out := make([]nameServer, 0, len(list))
	for _, ns := range list {
		if !validLabel(ns.Node) {
			continue
		}
		name := ns.Node + ".node." + s.cfg.Datacenter + "." + z.name
		if len(name) > maxNameLen {
			continue
		}
		out = append(out, nameServer{key: strings.ToLower(ns.Node), name: name, addr: ns.Address.Unmap().WithZone("")})
	}
	slices.SortStableFunc(out, func(a, b nameServer) int { return cmp.Compare(a.key, b.key) })
	return slices.CompactFunc(out, func(a, b nameServer) bool { return a.key == b.key })
}

func (s *Server) answerService(ctx context.Context, resp *dns.Msg, q dns.Question, z *zone, pq query) {
	hs, err := s.healthy(ctx, pq.service)
	if err != nil {
		s.logger.Warn("resolve service", "service", pq.service.Service, "tag", pq.service.Tag,
			"datacenter", pq.service.Datacenter, "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	if len(hs.insts) == 0 {
		s.nxdomain(resp, z)
		return
	}
	single := pq.single || hs.single
	ttl := s.ttls.lookup(pq.service.Service)
	if !single && hs.fresh != nil && isLowerASCII(q.Name) {
		// The hot path: records built once per set and question name,
		// shuffled per answer.
		s.builtAnswer(hs, q, z, pq.dc, ttl).fill(resp, s.cfg.ARecordLimit)
		if len(resp.Answer) == 0 {
			s.nodata(resp, z)
		}
		return
	}
	// The set may be shared with other questions: shuffle (and let
	// singleAnswer reorder) a copy.
	healthy := slices.Clone(hs.insts)
	if single {
		s.singleAnswer(resp, q, z, pq.dc, ttl, healthy)
	} else {
		s.listAnswer(resp, q, z, pq.dc, ttl, healthy)
	}
	if len(resp.Answer) == 0 {
		s.nodata(resp, z)
	}
}

// listAnswer answers q with the records of insts (shuffled in place), SRV
// targets named in datacenter dc, at most Config.ARecordLimit of them.
func (s *Server) listAnswer(resp *dns.Msg, q dns.Question, z *zone, dc string, ttl uint32, insts []*catalog.CheckServiceNode) {
	rand.Shuffle(len(insts), func(i, j int) { insts[i], insts[j] = insts[j], insts[i] })
	switch q.Qtype {
	case dns.TypeSRV:
		s.srvRecords(resp, q.Name, z, dc, ttl, insts)
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		serviceAddrRecords(resp, q.Name, q.Qtype, ttl, insts)
	}
	if limit := s.cfg.ARecordLimit; limit > 0 && len(resp.Answer) > limit {
		resp.Answer = resp.Answer[:limit]
		pruneExtra(resp)
	}
}

// singleAnswer answers q with the record of one instance, picked with
// balance.Weighted among those of insts that can answer q: an IPv4
// address for A, IPv6 for AAAA, either for ANY, an SRV target for SRV.
// As in list answers, instances with hostnames answer A, AAAA and ANY
// (with a CNAME) only when no instance has an IP address. insts is
// reordered.
func (s *Server) singleAnswer(resp *dns.Msg, q dns.Question, z *zone, dc string, ttl uint32, insts []*catalog.CheckServiceNode) {
	switch q.Qtype {
	case dns.TypeSRV:
		slab := newRRSlab(1)
		for len(insts) > 0 {
			i := balance.Weighted(insts)
			target, addr := s.srvTarget(slab, insts[i], z, dc, ttl)
			if target == "" {
				// Draw again without it: the odds of drawing among the
				// instances with a target, without building every target.
				insts[i] = insts[len(insts)-1]
				insts = insts[:len(insts)-1]
				continue
			}
			resp.Answer = append(resp.Answer, slab.srv(q.Name, insts[i], target, ttl))
			if addr != nil {
				resp.Extra = append(resp.Extra, addr)
			}
			return
		}
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		// Filter in place: the write index never passes the read index.
		cands, anyIP := insts[:0], false
		for _, inst := range insts {
			ip, ok := parseIP(instanceAddress(inst))
			if !ok {
				continue
			}
			anyIP = true
			if wantsAddr(q.Qtype, ip) {
				cands = append(cands, inst)
			}
		}
		if anyIP {
			if len(cands) > 0 {
				ip, _ := parseIP(instanceAddress(cands[balance.Weighted(cands)]))
				resp.Answer = append(resp.Answer, addrRR(q.Name, ip, ttl))
			}
			return
		}
		// No IP anywhere, so the loop above kept nothing: insts is whole.
		for _, inst := range insts {
			if validHostname(instanceAddress(inst)) {
				cands = append(cands, inst)
			}
		}
		if len(cands) > 0 {
			resp.Answer = append(resp.Answer, cnameRR(q.Name, instanceAddress(cands[balance.Weighted(cands)]), ttl))
		}
	}
}

func (s *Server) answerNode(ctx context.Context, resp *dns.Msg, q dns.Question, z *zone, pq query) {
	node, err := s.resolver.Node(ctx, pq.dc, pq.node)
	if err != nil {
		s.logger.Warn("resolve node", "node", pq.node, "datacenter", pq.dc, "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	if node == nil {
		s.nxdomain(resp, z)
		return
	}
	if ip, ok := parseIP(node.Address); ok {
		if wantsAddr(q.Qtype, ip) {
			resp.Answer = append(resp.Answer, addrRR(q.Name, ip, s.nodeTTL))
		}
	} else if validHostname(node.Address) {
		// The name is an alias, whatever the type asked.
		resp.Answer = append(resp.Answer, cnameRR(q.Name, node.Address, s.nodeTTL))
	}
	if len(resp.Answer) == 0 {
		s.nodata(resp, z)
	}
}

func (s *Server) answerAddr(resp *dns.Msg, q dns.Question, z *zone, pq query) {
	if wantsAddr(q.Qtype, pq.addr) {
		resp.Answer = append(resp.Answer, addrRR(q.Name, pq.addr, s.ttls.def))
		return
	}
	s.nodata(resp, z)
}

// nxdomain makes resp say the name does not exist.
func (s *Server) nxdomain(resp *dns.Msg, z *zone) {
	resp.Rcode = dns.RcodeNameError
	resp.Answer, resp.Extra = nil, nil
	resp.Ns = []dns.RR{s.soa(z, z.ns)}
}

// nodata makes resp say the name exists without records of the asked type.
func (s *Server) nodata(resp *dns.Msg, z *zone) {
	resp.Rcode = dns.RcodeSuccess
	resp.Answer, resp.Extra = nil, nil
	resp.Ns = []dns.RR{s.soa(z, z.ns)}
}

// fit bounds resp to what network carries: 512 bytes over UDP, or the
// client's EDNS0 size capped at maxUDPSize; 64 KiB over TCP. Records that
// do not fit are dropped whole and TC is set.
func (s *Server) fit(resp *dns.Msg, network string, reqOpt *dns.OPT) {
	size := dns.MaxMsgSize
	udp := transport(network) == "udp"
	cut := false
	if udp {
		size = dns.MinMsgSize
		if reqOpt != nil {
			size = min(max(int(reqOpt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
		if limit := s.cfg.UDPAnswerLimit; limit > 0 && resp.Authoritative && len(resp.Answer) > limit {
			resp.Answer = resp.Answer[:limit]
			pruneExtra(resp)
			cut = true
		}
	}
	// Truncate fills the sections in order and stops at the first record
	// that does not fit, so no additional record outlives its SRV record.
	resp.Truncate(size)
	if udp && resp.Authoritative {
		resp.Truncated = (resp.Truncated || cut) && !s.cfg.NoTruncateFlag
	}
}

// pruneExtra drops the additional records of SRV targets no longer in the
// answer, keeping the OPT record.
func pruneExtra(resp *dns.Msg) {
	if len(resp.Extra) == 0 {
		return
	}
	targets := make(map[string]struct{}, len(resp.Answer))
	for _, rr := range resp.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			targets[srv.Target] = struct{}{}
		}
	}
	kept := resp.Extra[:0]
	for _, rr := range resp.Extra {
		h := rr.Header()
		if _, ok := targets[h.Name]; ok || h.Rrtype == dns.TypeOPT {
			kept = append(kept, rr)
		}
	}
	clear(resp.Extra[len(kept):])
	resp.Extra = kept
}

// findOpt returns the last OPT record of extra and how many there are.
func findOpt(extra []dns.RR) (*dns.OPT, int) {
	var (
		opt *dns.OPT
		n   int
	)
	for _, rr := range extra {
		if o, ok := rr.(*dns.OPT); ok {
			opt = o
			n++
		}
	}
	return opt, n
}

// validQuestionName reports whether name can be parsed and packed back.
func validQuestionName(name string) bool {
	_, ok := dns.IsDomainName(name)
	return ok && dns.IsFqdn(name)
}

// answerQuery answers <name>.query[.<dc>]: the instances a prepared query
// found, A/AAAA or SRV, with SRV targets named in the datacenter that
// answered (another one after a failover).
func (s *Server) answerQuery(ctx context.Context, resp *dns.Msg, q dns.Question, z *zone, pq query) {
	qr, ok := s.resolver.(QueryResolver)
	if !ok {
		s.nxdomain(resp, z)
		return
	}
	ans, err := qr.PreparedQuery(ctx, pq.dc, pq.query)
	if err != nil {
		s.logger.Warn("prepared query", "query", pq.query, "datacenter", pq.dc, "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	if !ans.Found || len(ans.Nodes) == 0 {
		s.nxdomain(resp, z)
		return
	}
	ttl := s.ttls.lookup(ans.Service)
	if ans.TTL > 0 {
		ttl = uint32(ans.TTL / time.Second)
	}
	dc := ans.Datacenter
	if dc == "" {
		dc = pq.dc
	}
	insts := make([]*catalog.CheckServiceNode, len(ans.Nodes))
	for i := range ans.Nodes {
		insts[i] = &ans.Nodes[i]
	}
	s.listAnswer(resp, q, z, dc, ttl, insts)
	if len(resp.Answer) == 0 {
		s.nodata(resp, z)
	}
}
