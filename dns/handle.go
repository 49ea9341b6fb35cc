package dns

import (
	"context"
	"math/rand/v2"
	"strings"

	"github.com/meshd/meshd/catalog"
	"github.com/miekg/dns"
)

// maxUDPSize caps the EDNS0 UDP size we honour and advertise: larger
// datagrams fragment, and fragments get lost.
const maxUDPSize = dns.DefaultMsgSize // 4096

// Handle answers req, received over network ("udp" or "tcp"; anything not
// starting with "tcp" is treated as UDP and size-limited). It never
// returns nil and never panics, whatever req holds, and the reply always
// packs. Resolver calls use ctx. Safe for concurrent use; Handle needs no
// Serve call, which makes it the entry point for tests and benchmarks.
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
		resp.Question = []dns.Question{req.Question[0]}
	}
	if req.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	}
	resp.RecursionDesired = req.RecursionDesired
	resp.CheckingDisabled = req.CheckingDisabled
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

	s.answer(ctx, resp, req.Question[0])

	if reqOpt != nil {
		resp.SetEdns0(maxUDPSize, false)
	}
	s.fit(resp, network, reqOpt)
	return resp
}

// answer fills resp for question q.
func (s *Server) answer(ctx context.Context, resp *dns.Msg, q dns.Question) {
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return
	}
	labels, ok := s.zoneLabels(q.Name)
	if !ok {
		// Not ours, and there are no recursors (yet).
		resp.Rcode = dns.RcodeRefused
		return
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		resp.Rcode = dns.RcodeRefused // no zone transfers
		return
	}
	resp.Authoritative = true

	pq := parseLabels(labels, s.cfg.Datacenter)
	switch pq.kind {
	case kindApex:
		s.answerApex(resp, q)
	case kindService:
		s.answerService(ctx, resp, q, pq)
	case kindNode:
		s.answerNode(ctx, resp, q, pq)
	case kindAddr:
		s.answerAddr(resp, q, pq)
	default:
		s.nxdomain(resp)
	}
}

// zoneLabels returns the lower-cased labels of name left of the domain,
// and false when name is not in the domain.
func (s *Server) zoneLabels(name string) ([]string, bool) {
	if dns.CompareDomainName(name, s.domain) != s.domainLabels {
		return nil, false
	}
	all := dns.SplitDomainName(name)
	labels := all[:len(all)-s.domainLabels]
	for i, l := range labels {
		labels[i] = strings.ToLower(l)
	}
	return labels, true
}

func (s *Server) answerApex(resp *dns.Msg, q dns.Question) {
	if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
		resp.Answer = append(resp.Answer, s.soa())
	}
	if q.Qtype == dns.TypeNS || q.Qtype == dns.TypeANY {
		resp.Answer = append(resp.Answer, &dns.NS{Hdr: header(s.domain, dns.TypeNS, s.nodeTTL), Ns: "ns." + s.domain})
	}
	if len(resp.Answer) == 0 {
		s.nodata(resp)
	}
}

func (s *Server) answerService(ctx context.Context, resp *dns.Msg, q dns.Question, pq query) {
	instances, err := s.resolver.ServiceInstances(ctx, pq.service)
	if err != nil {
		s.logger.Warn("resolve service", "service", pq.service.Service, "tag", pq.service.Tag,
			"datacenter", pq.service.Datacenter, "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	healthy := make([]*catalog.CheckServiceNode, 0, len(instances))
	for i := range instances {
		inst := &instances[i]
		if inst.Node == nil || inst.Service == nil || !inst.Healthy(s.cfg.OnlyPassing) {
			continue
		}
		if pq.service.Tag != "" && !inst.Service.HasTag(pq.service.Tag) {
			continue
		}
		healthy = append(healthy, inst)
	}
	if len(healthy) == 0 {
		s.nxdomain(resp)
		return
	}
	rand.Shuffle(len(healthy), func(i, j int) { healthy[i], healthy[j] = healthy[j], healthy[i] })

	switch q.Qtype {
	case dns.TypeSRV:
		s.srvRecords(resp, q.Name, pq.dc, healthy)
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		s.serviceAddrRecords(resp, q.Name, q.Qtype, healthy)
	}
	if limit := s.cfg.ARecordLimit; limit > 0 && len(resp.Answer) > limit {
		resp.Answer = resp.Answer[:limit]
		pruneExtra(resp)
	}
	if len(resp.Answer) == 0 {
		s.nodata(resp)
	}
}

func (s *Server) answerNode(ctx context.Context, resp *dns.Msg, q dns.Question, pq query) {
	node, err := s.resolver.Node(ctx, pq.dc, pq.node)
	if err != nil {
		s.logger.Warn("resolve node", "node", pq.node, "datacenter", pq.dc, "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	if node == nil {
		s.nxdomain(resp)
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
		s.nodata(resp)
	}
}

func (s *Server) answerAddr(resp *dns.Msg, q dns.Question, pq query) {
	if wantsAddr(q.Qtype, pq.addr) {
		resp.Answer = append(resp.Answer, addrRR(q.Name, pq.addr, s.serviceTTL))
		return
	}
	s.nodata(resp)
}

// nxdomain makes resp say the name does not exist.
func (s *Server) nxdomain(resp *dns.Msg) {
	resp.Rcode = dns.RcodeNameError
	resp.Answer, resp.Extra = nil, nil
	resp.Ns = []dns.RR{s.soa()}
}

// nodata makes resp say the name exists without records of the asked type.
func (s *Server) nodata(resp *dns.Msg) {
	resp.Rcode = dns.RcodeSuccess
	resp.Answer, resp.Extra = nil, nil
	resp.Ns = []dns.RR{s.soa()}
}

// fit bounds resp to what network carries: 512 bytes over UDP, or the
// client's EDNS0 size capped at maxUDPSize; 64 KiB over TCP. Records that
// do not fit are dropped whole and TC is set.
func (s *Server) fit(resp *dns.Msg, network string, reqOpt *dns.OPT) {
	size := dns.MaxMsgSize
	if !strings.HasPrefix(network, "tcp") {
		size = dns.MinMsgSize
		if reqOpt != nil {
			size = min(max(int(reqOpt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
	}
	// Truncate fills the sections in order and stops at the first record
	// that does not fit, so no additional record outlives its SRV record.
	resp.Truncate(size)
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
