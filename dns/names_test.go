package dns

import (
	"net/netip"
	"testing"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name   string
		labels []string
		want   query
	}{
		{name: "apex", labels: nil, want: query{kind: kindApex}},
		{name: "service", labels: []string{"web", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "web"}}},
		{name: "service dc", labels: []string{"web", "service", "dc2"},
			want: query{kind: kindService, dc: "dc2", service: ServiceLookup{Datacenter: "dc2", Service: "web"}}},
		{name: "tag", labels: []string{"v1", "web", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "v1"}}},
		{name: "tag dc", labels: []string{"v1", "web", "service", "dc2"},
			want: query{kind: kindService, dc: "dc2", service: ServiceLookup{Datacenter: "dc2", Service: "web", Tag: "v1"}}},
		{name: "rfc2782", labels: []string{"_web", "_v1", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "v1"}}},
		{name: "rfc2782 tcp", labels: []string{"_web", "_tcp", "service", "dc2"},
			want: query{kind: kindService, dc: "dc2", service: ServiceLookup{Datacenter: "dc2", Service: "web"}}},
		{name: "rfc2782 udp", labels: []string{"_web", "_udp", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "web"}}},
		{name: "one underscore is a tag", labels: []string{"_v1", "web", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "_v1"}}},
		{name: "service named service", labels: []string{"service", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "service"}}},
		{name: "rightmost kind wins", labels: []string{"web", "service", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "service", Tag: "web"}}},
		{name: "single", labels: []string{"single", "web", "service"},
			want: query{kind: kindService, dc: "dc1", single: true, service: ServiceLookup{Datacenter: "dc1", Service: "web"}}},
		{name: "single tag dc", labels: []string{"single", "v1", "web", "service", "dc2"},
			want: query{kind: kindService, dc: "dc2", single: true, service: ServiceLookup{Datacenter: "dc2", Service: "web", Tag: "v1"}}},
		{name: "single rfc2782", labels: []string{"single", "_web", "_tcp", "service"},
			want: query{kind: kindService, dc: "dc1", single: true, service: ServiceLookup{Datacenter: "dc1", Service: "web"}}},
		{name: "single rfc2782 tag", labels: []string{"single", "_web", "_v1", "service"},
			want: query{kind: kindService, dc: "dc1", single: true, service: ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "v1"}}},
		{name: "service named single", labels: []string{"single", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "single"}}},
		{name: "single answer of service single", labels: []string{"single", "single", "service"},
			want: query{kind: kindService, dc: "dc1", single: true, service: ServiceLookup{Datacenter: "dc1", Service: "single"}}},
		{name: "tag single, RFC 2782", labels: []string{"_web", "_single", "service"},
			want: query{kind: kindService, dc: "dc1", service: ServiceLookup{Datacenter: "dc1", Service: "web", Tag: "single"}}},
		{name: "single is a tag only in RFC 2782 form", labels: []string{"v1", "single", "web", "service"}},
		{name: "single node is a node", labels: []string{"single", "node"}, want: query{kind: kindNode, dc: "dc1", node: "single"}},
		{name: "single too many labels", labels: []string{"single", "a", "b", "c", "service"}},
		{name: "node", labels: []string{"n1", "node"}, want: query{kind: kindNode, dc: "dc1", node: "n1"}},
		{name: "node dc", labels: []string{"n1", "node", "dc2"}, want: query{kind: kindNode, dc: "dc2", node: "n1"}},
		{name: "addr v4", labels: []string{"0a000001", "addr", "dc1"},
			want: query{kind: kindAddr, dc: "dc1", addr: netip.MustParseAddr("10.0.0.1")}},
		{name: "addr v6", labels: []string{"20010db8000000000000000000000001", "addr"},
			want: query{kind: kindAddr, dc: "dc1", addr: netip.MustParseAddr("2001:db8::1")}},
		{name: "query", labels: []string{"web-any", "query"}, want: query{kind: kindQuery, dc: "dc1", query: "web-any"}},
		{name: "query dc", labels: []string{"web-any", "query", "dc2"}, want: query{kind: kindQuery, dc: "dc2", query: "web-any"}},
		{name: "query two labels", labels: []string{"a", "b", "query"}},
		{name: "no kind", labels: []string{"web"}},
		{name: "kind alone", labels: []string{"service"}},
		{name: "kind alone with dc", labels: []string{"node", "dc1"}},
		{name: "two labels after kind", labels: []string{"web", "service", "dc1", "x"}},
		{name: "too many before service", labels: []string{"a", "b", "c", "service"}},
		{name: "two labels before node", labels: []string{"a", "b", "node"}},
		{name: "rfc2782 empty service", labels: []string{"_", "_tcp", "service"}},
		{name: "rfc2782 empty tag", labels: []string{"_web", "_", "service"}},
		{name: "addr bad hex", labels: []string{"0a00000g", "addr"}},
		{name: "addr bad length", labels: []string{"0a0000", "addr"}},
		{name: "addr two labels", labels: []string{"0a000001", "0a000001", "addr"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseLabels(tc.labels, "dc1"); got != tc.want {
				t.Errorf("parseLabels(%q) = %+v, want %+v", tc.labels, got, tc.want)
			}
		})
	}
}

func TestHexAddrRoundTrip(t *testing.T) {
	for _, s := range []string{"10.1.0.2", "255.255.255.255", "2001:db8::6", "::1"} {
		ip := netip.MustParseAddr(s)
		label := hexAddrLabel(ip)
		got, ok := parseHexAddr(label)
		if !ok || got != ip {
			t.Errorf("%s -> %q -> %v %v", s, label, got, ok)
		}
	}
}

func TestValidHostname(t *testing.T) {
	tests := map[string]bool{
		"db.example.org":  true,
		"db.example.org.": true,
		"db":              true,
		"":                false,
		".":               false,
		"a..b":            false,
		".a":              false,
		"a b.org":         false,
		"a\\.b.org":       false,
		"10.0.0":          true,
	}
	for in, want := range tests {
		if got := validHostname(in); got != want {
			t.Errorf("validHostname(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestZoneMatch(t *testing.T) {
	z := newZone("Consul")
	tests := []struct {
		name   string
		prefix string
		ok     bool
	}{
		{"consul.", "", true},
		{"CONSUL.", "", true},
		{"web.service.consul.", "web.service", true},
		{"Web.Service.CONSUL.", "Web.Service", true},
		{"xconsul.", "", false},
		{"consul.example.", "", false},
		{"onsul.", "", false},
		{`x\.consul.`, "", false},
		{`x\\.consul.`, `x\\`, true},
		{"a.b.consul.", "a.b", true},
		{".", "", false},
	}
	for _, tc := range tests {
		prefix, ok := z.match(tc.name)
		if prefix != tc.prefix || ok != tc.ok {
			t.Errorf("match(%q) = %q, %v, want %q, %v", tc.name, prefix, ok, tc.prefix, tc.ok)
		}
	}
}

func TestParseReverseName(t *testing.T) {
	tests := []struct {
		name string
		want string // "" = does not parse
	}{
		{"1.0.0.10.in-addr.arpa.", "10.0.0.1"},
		{"255.255.255.255.IN-ADDR.ARPA.", "255.255.255.255"},
		{"0.0.0.0.in-addr.arpa.", "0.0.0.0"},
		{"1.0.0.10.in-addr.arpa.x.", ""},
		{"0.0.10.in-addr.arpa.", ""},
		{"1.1.0.0.10.in-addr.arpa.", ""},
		{"256.0.0.10.in-addr.arpa.", ""},
		{"01.0.0.10.in-addr.arpa.", ""},
		{"1..0.10.in-addr.arpa.", ""},
		{"a.0.0.10.in-addr.arpa.", ""},
		{"1000.0.0.10.in-addr.arpa.", ""},
		{"in-addr.arpa.", ""},
		{"1.0.0.10xin-addr.arpa.", ""},
		{"6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "2001:db8::6"},
		{"F.E.D.C.B.A.9.8.7.6.5.4.3.2.1.0.F.E.D.C.B.A.9.8.7.6.5.4.3.2.1.0.IP6.ARPA.", "123:4567:89ab:cdef:123:4567:89ab:cdef"},
		{"1.0.0.0.0.0.a.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", "::ffff:10.0.0.1"},
		{"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", ""},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", ""},
		{"60.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", ""},
		{"ip6.arpa.", ""},
		{"1.0.0.10.e164.arpa.", ""},
	}
	for _, tc := range tests {
		got, ok := parseReverseName(tc.name)
		switch {
		case tc.want == "" && ok:
			t.Errorf("parseReverseName(%q) = %v, want no parse", tc.name, got)
		case tc.want != "" && (!ok || got != netip.MustParseAddr(tc.want)):
			t.Errorf("parseReverseName(%q) = %v, %v, want %s", tc.name, got, ok, tc.want)
		}
	}
}
