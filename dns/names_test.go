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
		{name: "node", labels: []string{"n1", "node"}, want: query{kind: kindNode, dc: "dc1", node: "n1"}},
		{name: "node dc", labels: []string{"n1", "node", "dc2"}, want: query{kind: kindNode, dc: "dc2", node: "n1"}},
		{name: "addr v4", labels: []string{"0a000001", "addr", "dc1"},
			want: query{kind: kindAddr, dc: "dc1", addr: netip.MustParseAddr("10.0.0.1")}},
		{name: "addr v6", labels: []string{"20010db8000000000000000000000001", "addr"},
			want: query{kind: kindAddr, dc: "dc1", addr: netip.MustParseAddr("2001:db8::1")}},
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
