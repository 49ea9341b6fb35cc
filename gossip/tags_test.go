package gossip

import (
	"errors"
	"log"
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/serf/serf"
)

func TestTagsValidate(t *testing.T) {
	server := Tags{Role: RoleServer, Datacenter: "dc1", NodeID: "0b2c6c9e-4c1f-4a36-a9a4-1c7b2b4d1f00",
		ServerPort: 8300, BootstrapExpect: 3, WANPort: 8302, Build: "0.1.0"}
	client := Tags{Role: RoleClient, Datacenter: "us-east_1"}
	with := func(base Tags, f func(*Tags)) Tags { f(&base); return base }

	for _, tc := range []struct {
		name string
		tags Tags
		want error // nil: valid
		text string
	}{
		{"server", server, nil, ""},
		{"client", client, nil, ""},
		{"server without expect", with(server, func(t *Tags) { t.BootstrapExpect = 0 }), nil, ""},
		{"zero", Tags{}, ErrInvalidTags, "role"},
		{"unknown role", with(client, func(t *Tags) { t.Role = "consul" }), ErrInvalidTags, "role"},
		{"no datacenter", with(client, func(t *Tags) { t.Datacenter = "" }), ErrInvalidTags, "datacenter"},
		{"upper-case datacenter", with(client, func(t *Tags) { t.Datacenter = "DC1" }), ErrInvalidTags, "datacenter"},
		{"dotted datacenter", with(client, func(t *Tags) { t.Datacenter = "dc.1" }), ErrInvalidTags, "datacenter"},
		{"server without port", with(server, func(t *Tags) { t.ServerPort = 0 }), ErrInvalidTags, "server port"},
		{"server port too big", with(server, func(t *Tags) { t.ServerPort = 65536 }), ErrInvalidTags, "server port"},
		{"negative expect", with(server, func(t *Tags) { t.BootstrapExpect = -1 }), ErrInvalidTags, "bootstrap expect"},
		{"client with port", with(client, func(t *Tags) { t.ServerPort = 8300 }), ErrInvalidTags, "server port"},
		{"client with expect", with(client, func(t *Tags) { t.BootstrapExpect = 3 }), ErrInvalidTags, "bootstrap expect"},
		{"wan port too big", with(server, func(t *Tags) { t.WANPort = 65536 }), ErrInvalidTags, "wan port"},
		{"client with wan port", with(client, func(t *Tags) { t.WANPort = 8302 }), ErrInvalidTags, "wan port"},
		{"server with fsm version", with(server, func(t *Tags) { t.FSM = 2 }), nil, ""},
		{"negative fsm version", with(server, func(t *Tags) { t.FSM = -1 }), ErrInvalidTags, "fsm version"},
		{"client with fsm version", with(client, func(t *Tags) { t.FSM = 2 }), ErrInvalidTags, "fsm version"},
		{"oversize build", with(server, func(t *Tags) { t.Build = strings.Repeat("x", 500) }), ErrTagsTooLarge, "bytes"},
		{"oversize node id", with(client, func(t *Tags) { t.NodeID = strings.Repeat("x", 600) }), ErrTagsTooLarge, "512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.tags.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Validate() = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
}

func TestTagsRoundTrip(t *testing.T) {
	for _, tags := range []Tags{
		{Role: RoleServer, Datacenter: "dc1", NodeID: "id", ServerPort: 8300, BootstrapExpect: 3, Build: "0.1.0"},
		{Role: RoleServer, Datacenter: "dc1", NodeID: "id", ServerPort: 8300, Build: "0.2.0", FSM: 2},
		{Role: RoleClient, Datacenter: "dc2"},
	} {
		raw := tags.Encode()
		got, err := DecodeTags(raw)
		if err != nil || got != tags {
			t.Errorf("DecodeTags(Encode(%+v)) = %+v, %v", tags, got, err)
		}
		if raw[TagVersion] != TagsVersion {
			t.Errorf("Encode(%+v) = %v: no vsn", tags, raw)
		}
	}
	if _, ok := (Tags{Role: RoleClient, Datacenter: "dc1"}).Encode()[TagServerPort]; ok {
		t.Error("a client advertises a port")
	}
	got, err := DecodeTags(map[string]string{TagRole: "server", TagDatacenter: "dc1", TagServerPort: "x", "other": "y"})
	if !errors.Is(err, ErrInvalidTags) || got.Role != RoleServer || got.Datacenter != "dc1" || got.ServerPort != 0 {
		t.Errorf("DecodeTags(bad port) = %+v, %v", got, err)
	}
}

// TestTagsSizeMatchesSerf checks EncodedSize against serf itself: serf
// accepts tags of exactly MaxTagsSize bytes and refuses one more.
func TestTagsSizeMatchesSerf(t *testing.T) {
	base := Tags{Role: RoleServer, Datacenter: "dc1", ServerPort: 8300}
	fill := MaxTagsSize - base.EncodedSize()
	atLimit := base
	for atLimit.Build = strings.Repeat("b", fill); atLimit.EncodedSize() > MaxTagsSize; {
		atLimit.Build = atLimit.Build[1:] // msgpack's string header grows with the length
	}
	for atLimit.EncodedSize() < MaxTagsSize {
		atLimit.Build += "b"
	}
	if atLimit.EncodedSize() != MaxTagsSize {
		t.Fatalf("could not build tags of exactly %d bytes (got %d)", MaxTagsSize, atLimit.EncodedSize())
	}
	over := atLimit
	over.Build += "b"
	if err := atLimit.Validate(); err != nil {
		t.Errorf("Validate at the limit: %v", err)
	}
	if err := over.Validate(); !errors.Is(err, ErrTagsTooLarge) {
		t.Errorf("Validate one byte over: %v", err)
	}

	for _, tc := range []struct {
		tags   Tags
		wantOK bool
	}{{atLimit, true}, {over, false}} {
		cfg := TestConfig()
		cfg.NodeName = "size"
		cfg.Tags = tc.tags
		sc := cfg.serfConfig(log.New(testWriterFor(t), "", 0), make(chan serf.Event, eventBuffer))
		s, err := serf.Create(sc)
		if (err == nil) != tc.wantOK {
			t.Errorf("serf.Create with %d-byte tags: err = %v, want ok=%v", tc.tags.EncodedSize(), err, tc.wantOK)
		}
		if s != nil {
			s.Shutdown()
		}
	}
}

func testWriterFor(t testing.TB) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return w
}

func TestConfigValidate(t *testing.T) {
	valid := TestConfig()
	valid.NodeName = "node-1.example"
	with := func(f func(*Config)) Config { c := valid; f(&c); return c }

	for _, tc := range []struct {
		name string
		cfg  Config
		text string // "" : valid
	}{
		{"test config", valid, ""},
		{"lan default", func() Config { c := DefaultLANConfig(); c.NodeName = "n"; return c }(), ""},
		{"wan default", func() Config { c := DefaultWANConfig(); c.NodeName = "n.dc1"; return c }(), ""},
		{"ipv6 bind", with(func(c *Config) { c.BindAddr = "::1"; c.AdvertiseAddr = "fd00::1"; c.AdvertisePort = 9301 }), ""},
		{"no node name", with(func(c *Config) { c.NodeName = "" }), "node name"},
		{"long node name", with(func(c *Config) { c.NodeName = strings.Repeat("n", 129) }), "node name"},
		{"node name with space", with(func(c *Config) { c.NodeName = "a b" }), "node name"},
		{"node name with slash", with(func(c *Config) { c.NodeName = "a/b" }), "node name"},
		{"no bind addr", with(func(c *Config) { c.BindAddr = "" }), "bind addr"},
		{"hostname bind addr", with(func(c *Config) { c.BindAddr = "localhost" }), "bind addr"},
		{"bind port", with(func(c *Config) { c.BindPort = 70000 }), "bind port"},
		{"negative bind port", with(func(c *Config) { c.BindPort = -1 }), "bind port"},
		{"advertise addr", with(func(c *Config) { c.AdvertiseAddr = "host" }), "advertise addr"},
		{"unspecified advertise", with(func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }), "advertise addr"},
		{"advertise port", with(func(c *Config) { c.AdvertisePort = 65536 }), "advertise port"},
		{"bad tags", with(func(c *Config) { c.Tags.Role = "" }), "tags"},
		{"oversize tags", with(func(c *Config) { c.Tags.Build = strings.Repeat("x", 600) }), "tags"},
		{"no probe interval", with(func(c *Config) { c.ProbeInterval = 0 }), "probe interval"},
		{"probe timeout over interval", with(func(c *Config) { c.ProbeTimeout = c.ProbeInterval }), "probe timeout"},
		{"suspicion mult", with(func(c *Config) { c.SuspicionMult = 0 }), "suspicion mult"},
		{"suspicion max mult", with(func(c *Config) { c.SuspicionMaxTimeoutMult = 0 }), "suspicion max timeout mult"},
		{"gossip interval", with(func(c *Config) { c.GossipInterval = 0 }), "gossip interval"},
		{"gossip nodes", with(func(c *Config) { c.GossipNodes = 0 }), "gossip nodes"},
		{"retransmit mult", with(func(c *Config) { c.RetransmitMult = 0 }), "retransmit mult"},
		{"push pull", with(func(c *Config) { c.PushPullInterval = -1 }), "push pull interval"},
		{"reconnect timeout", with(func(c *Config) { c.ReconnectTimeout = 0 }), "reconnect timeout"},
		{"tombstone timeout", with(func(c *Config) { c.TombstoneTimeout = 0 }), "tombstone timeout"},
		{"reap interval", with(func(c *Config) { c.ReapInterval = 0 }), "reap interval"},
		{"broadcast timeout", with(func(c *Config) { c.BroadcastTimeout = 0 }), "broadcast timeout"},
		{"leave delay", with(func(c *Config) { c.LeavePropagateDelay = -1 }), "leave propagate delay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.text == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig naming %q", err, tc.text)
			}
			if _, err := New(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New() = %v, want ErrInvalidConfig", err)
			}
		})
	}
	big := with(func(c *Config) { c.Tags.Build = strings.Repeat("x", 600) })
	if err := big.Validate(); !errors.Is(err, ErrTagsTooLarge) {
		t.Errorf("oversize tags in config: %v does not wrap ErrTagsTooLarge", err)
	}
}

func TestServerFromMember(t *testing.T) {
	serverTags := Tags{Role: RoleServer, Datacenter: "dc1", NodeID: "id1", ServerPort: 8300, BootstrapExpect: 3, Build: "b"}
	base := Member{Name: "s1", Addr: netip.MustParseAddr("10.0.0.1"), Port: 8301, Status: StatusAlive,
		Tags: serverTags, RawTags: serverTags.Encode()}
	with := func(f func(*Member)) Member {
		m := base
		m.RawTags = base.Tags.Encode()
		f(&m)
		return m
	}
	for _, tc := range []struct {
		name string
		m    Member
		ok   bool
	}{
		{"server", base, true},
		{"failed server", with(func(m *Member) { m.Status = StatusFailed }), true},
		{"client", with(func(m *Member) { m.Tags.Role = RoleClient }), false},
		{"no port", with(func(m *Member) { m.Tags.ServerPort = 0 }), false},
		{"no datacenter", with(func(m *Member) { m.Tags.Datacenter = "" }), false},
		{"no address", with(func(m *Member) { m.Addr = netip.Addr{} }), false},
		{"malformed expect", with(func(m *Member) { m.RawTags[TagExpect] = "three"; m.Tags.BootstrapExpect = 0 }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := ServerFromMember(tc.m)
			if ok != tc.ok {
				t.Fatalf("ServerFromMember ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			want := Server{Name: "s1", ID: "id1", Datacenter: "dc1", Addr: netip.MustParseAddrPort("10.0.0.1:8300"),
				Expect: 3, Build: "b", Status: tc.m.Status}
			if s != want {
				t.Fatalf("ServerFromMember = %+v, want %+v", s, want)
			}
			if !tc.m.IsServer() {
				t.Fatal("IsServer false for a server")
			}
		})
	}
	// IPv4-mapped addresses from serf come out as plain IPv4.
	if a := addrFromIP(netip.MustParseAddr("10.0.0.1").AsSlice()); a.String() != "10.0.0.1" {
		t.Errorf("addrFromIP = %v", a)
	}
	if a := addrFromIP(netip.MustParseAddr("::ffff:10.0.0.1").AsSlice()); a.String() != "10.0.0.1" {
		t.Errorf("addrFromIP(mapped) = %v", a)
	}
}
