package dns

import (
	"context"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// forward fills resp with the reply of the first recursor to answer req,
// trying them in order, or SERVFAIL when none does. Any rcode is an
// answer: an NXDOMAIN from upstream is relayed as such. The reply is not
// authoritative and offers recursion; its upstream OPT and TSIG records
// are dropped (Handle adds our own OPT).
func (s *Server) forward(ctx context.Context, resp, req *dns.Msg, reqOpt *dns.OPT, network string) {
	resp.Authoritative = false
	q := req.Question[0]
	m := new(dns.Msg)
	// A fresh ID: the client's is not ours to reuse towards upstream, and
	// a random one makes spoofed replies harder.
	m.Id = dns.Id()
	m.Opcode = dns.OpcodeQuery
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.Question = []dns.Question{q}
	m.SetEdns0(maxUDPSize, reqOpt != nil && reqOpt.Do())

	network = transport(network)
	var lastErr error
	for _, addr := range s.recursors {
		r, err := s.exchange(ctx, m, addr, network)
		if err == nil {
			// Handle promises a reply that packs; what unpacked may not
			// pack again.
			if _, err = r.Pack(); err != nil {
				err = fmt.Errorf("reply does not pack: %w", err)
			}
		}
		if err == nil {
			relay(resp, r)
			return
		}
		lastErr = err
		s.logger.Debug("recursor failed", "recursor", addr, "network", network, "name", q.Name, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	s.logger.Warn("no recursor answered", "name", q.Name, "type", dns.Type(q.Qtype).String(),
		"recursors", len(s.recursors), "err", lastErr)
	resp.Rcode = dns.RcodeServerFailure
}

// exchange asks one recursor over network ("udp" or "tcp"). A UDP reply
// with TC set is asked again over TCP; if that fails, the truncated reply
// is the answer, and its TC tells the client to retry over TCP itself.
func (s *Server) exchange(ctx context.Context, m *dns.Msg, addr, network string) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: s.cfg.RecursorTimeout}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err == nil {
		err = checkReply(m, r)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", network, err)
	}
	if !r.Truncated || network != "udp" {
		return r, nil
	}
	c.Net = "tcp"
	rt, _, err := c.ExchangeContext(ctx, m, addr)
	if err == nil {
		err = checkReply(m, rt)
	}
	if err != nil {
		s.logger.Debug("recursor TCP retry failed, relaying the truncated reply", "recursor", addr, "err", err)
		return r, nil
	}
	return rt, nil
}

// checkReply checks that r answers m (the client already matched the
// ID): a query response with m's question, or without question when it
// reports an error.
func checkReply(m, r *dns.Msg) error {
	if !r.Response || r.Opcode != dns.OpcodeQuery {
		return errBadReply
	}
	if len(r.Question) == 0 && r.Rcode != dns.RcodeSuccess {
		return nil
	}
	q := m.Question[0]
	if len(r.Question) != 1 || r.Question[0].Qtype != q.Qtype || r.Question[0].Qclass != q.Qclass ||
		!strings.EqualFold(r.Question[0].Name, q.Name) {
		return errBadReply
	}
	return nil
}

// relay copies the recursor's reply r into resp, which keeps the
// client's ID, question and RD/CD flags.
func relay(resp, r *dns.Msg) {
	resp.Rcode = r.Rcode
	resp.Authoritative = false
	resp.RecursionAvailable = true
	resp.AuthenticatedData = r.AuthenticatedData
	resp.Truncated = r.Truncated
	resp.Answer = r.Answer
	resp.Ns = r.Ns
	extra := r.Extra[:0]
	for _, rr := range r.Extra {
		switch rr.Header().Rrtype {
		case dns.TypeOPT, dns.TypeTSIG:
			continue
		}
		extra = append(extra, rr)
	}
	resp.Extra = extra
}

// transport is the network an answer goes out on: "tcp" for anything
// starting with "tcp", else "udp".
func transport(network string) string {
	if strings.HasPrefix(network, "tcp") {
		return "tcp"
	}
	return "udp"
}
