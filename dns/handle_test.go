package dns_test

import (
	"strings"
	"testing"

	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// TestHandleOddRequests drives Handle with requests a network server would
// mostly filter out before, and ones no client should send.
func TestHandleOddRequests(t *testing.T) {
	srv, err := meshdns.New(meshdns.DefaultConfig(), newFixture())
	if err != nil {
		t.Fatal(err)
	}
	withOpt := func(m *dns.Msg, version uint8) *dns.Msg {
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(version)
		return m
	}
	tests := []struct {
		name         string
		req          *dns.Msg
		rcode        int
		wantQuestion bool // the question is echoed
		wantOpt      bool
		wantAnswers  int
	}{
		{name: "nil", req: nil, rcode: dns.RcodeFormatError},
		{name: "no question", req: &dns.Msg{}, rcode: dns.RcodeFormatError},
		{name: "two questions", req: &dns.Msg{Question: []dns.Question{
			{Name: "web.service.consul.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
			{Name: "db.service.dc2.consul.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
		}}, rcode: dns.RcodeFormatError},
		{name: "a response", req: func() *dns.Msg { m := query("web.service.consul.", dns.TypeA); m.Response = true; return m }(),
			rcode: dns.RcodeFormatError},
		{name: "opcode UPDATE", req: new(dns.Msg).SetUpdate("consul."), rcode: dns.RcodeNotImplemented, wantQuestion: true},
		{name: "opcode NOTIFY", req: new(dns.Msg).SetNotify("consul."), rcode: dns.RcodeNotImplemented, wantQuestion: true},
		{name: "opcode out of range", req: func() *dns.Msg { m := query("web.service.consul.", dns.TypeA); m.Opcode = 99; return m }(),
			rcode: dns.RcodeFormatError},
		{name: "empty name", req: &dns.Msg{Question: []dns.Question{{Name: "", Qtype: dns.TypeA, Qclass: dns.ClassINET}}},
			rcode: dns.RcodeFormatError},
		{name: "name not fully qualified", req: &dns.Msg{Question: []dns.Question{{Name: "web.service.consul", Qtype: dns.TypeA, Qclass: dns.ClassINET}}},
			rcode: dns.RcodeFormatError},
		{name: "empty label", req: &dns.Msg{Question: []dns.Question{{Name: "web..consul.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}},
			rcode: dns.RcodeFormatError},
		{name: "label over 63 bytes", req: query(strings.Repeat("a", 64)+".service.consul.", dns.TypeA),
			rcode: dns.RcodeFormatError},
		{name: "longest label", req: query(strings.Repeat("a", 63)+".service.consul.", dns.TypeA),
			rcode: dns.RcodeNameError, wantQuestion: true},
		{name: "name over 255 bytes", req: query(strings.Repeat("abcdefghi.", 26)+"consul.", dns.TypeA),
			rcode: dns.RcodeFormatError},
		{name: "class CHAOS", req: &dns.Msg{Question: []dns.Question{{Name: "web.service.consul.", Qtype: dns.TypeTXT, Qclass: dns.ClassCHAOS}}},
			rcode: dns.RcodeRefused, wantQuestion: true},
		{name: "class ANY", req: &dns.Msg{Question: []dns.Question{{Name: "web.service.consul.", Qtype: dns.TypeA, Qclass: dns.ClassANY}}},
			rcode: dns.RcodeSuccess, wantQuestion: true, wantAnswers: 3},
		{name: "AXFR", req: query("consul.", dns.TypeAXFR), rcode: dns.RcodeRefused, wantQuestion: true},
		{name: "EDNS version 1", req: withOpt(query("web.service.consul.", dns.TypeA), 1),
			rcode: dns.RcodeBadVers, wantQuestion: true, wantOpt: true},
		{name: "EDNS version 0", req: withOpt(query("web.service.consul.", dns.TypeA), 0),
			rcode: dns.RcodeSuccess, wantQuestion: true, wantOpt: true, wantAnswers: 3},
		{name: "two OPT records", req: func() *dns.Msg {
			m := withOpt(query("web.service.consul.", dns.TypeA), 0)
			return m.SetEdns0(512, false)
		}(), rcode: dns.RcodeFormatError, wantQuestion: true},
		{name: "SRV on a node", req: query("n1.node.consul.", dns.TypeSRV), rcode: dns.RcodeSuccess, wantQuestion: true},
		{name: "OPT as question type", req: query("web.service.consul.", dns.TypeOPT), rcode: dns.RcodeSuccess, wantQuestion: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := srv.Handle(t.Context(), tc.req, "udp")
			if resp == nil {
				t.Fatal("nil reply")
			}
			if _, err := resp.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, resp)
			}
			if resp.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
			}
			if !resp.Response || resp.RecursionAvailable {
				t.Errorf("QR %v RA %v, want true false", resp.Response, resp.RecursionAvailable)
			}
			if tc.req != nil && resp.Id != tc.req.Id {
				t.Errorf("id %d, want %d", resp.Id, tc.req.Id)
			}
			if got := len(resp.Question) == 1; got != tc.wantQuestion {
				t.Errorf("question echoed: %v, want %v (%v)", got, tc.wantQuestion, resp.Question)
			}
			if got := resp.IsEdns0() != nil; got != tc.wantOpt {
				t.Errorf("OPT in reply: %v, want %v", got, tc.wantOpt)
			}
			if len(resp.Answer) != tc.wantAnswers {
				t.Errorf("%d answers, want %d", len(resp.Answer), tc.wantAnswers)
			}
		})
	}
}

// TestHandleCopiesFlags checks the header of an ordinary answer.
func TestHandleCopiesFlags(t *testing.T) {
	srv, err := meshdns.New(meshdns.DefaultConfig(), newFixture())
	if err != nil {
		t.Fatal(err)
	}
	for _, rd := range []bool{true, false} {
		req := query("web.service.consul.", dns.TypeA)
		req.Id = 4242
		req.RecursionDesired = rd
		req.CheckingDisabled = rd
		resp := srv.Handle(t.Context(), req, "udp")
		if resp.Id != 4242 || resp.RecursionDesired != rd || resp.CheckingDisabled != rd ||
			!resp.Authoritative || resp.RecursionAvailable || !resp.Response || resp.Opcode != dns.OpcodeQuery {
			t.Errorf("RD=%v: bad header %+v", rd, resp.MsgHdr)
		}
	}
}
