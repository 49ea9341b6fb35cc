package gossip

import (
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"time"
	"unicode"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Default gossip ports (Consul's).
const (
	DefaultLANPort = 8301
	DefaultWANPort = 8302
)

// MaxNodeNameLength is the longest node name accepted (serf's limit).
const MaxNodeNameLength = 128

// Config configures a Pool. Start from DefaultLANConfig (or TestConfig in
// tests) and set NodeName and Tags; the zero value is not valid.
type Config struct {
	// NodeName is this agent's name, unique in the pool. Required.
	NodeName string

	// BindAddr is the IP the gossip TCP and UDP listeners bind to.
	// "0.0.0.0" binds every interface and advertises the first private IP.
	BindAddr string
	// BindPort is the gossip port for TCP and UDP; 0 lets the kernel pick
	// one (Pool.Addr tells which), which tests use.
	BindPort int
	// AdvertiseAddr is the IP other members reach this one at; empty
	// means the bind IP (or a private IP when bound to 0.0.0.0).
	AdvertiseAddr string
	// AdvertisePort is the port other members reach this one at; 0 means
	// the bound port. It is ignored when BindPort is 0 (memberlist then
	// advertises the port it got).
	AdvertisePort int

	// Tags are what this agent advertises.
	Tags Tags

	// ProbeInterval is how often this agent probes one (round-robin)
	// member. A failed probe takes the whole interval (direct ping, then
	// indirect pings and a TCP ping until the interval ends). It scales
	// the suspicion timeout; see the package doc.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct UDP ping may wait for its ack
	// before indirect pings start. Must be below ProbeInterval.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout:
	// SuspicionMult * max(1, log10(n)) * ProbeInterval. It also sets how
	// many independent confirmations (SuspicionMult-2) bring the timeout
	// down from its maximum to that minimum.
	SuspicionMult int
	// SuspicionMaxTimeoutMult is Lifeguard's ceiling: with no independent
	// confirmation a suspect is given SuspicionMaxTimeoutMult times the
	// suspicion timeout to refute before it is declared failed.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often queued broadcasts are gossiped to
	// GossipNodes random members.
	GossipInterval time.Duration
	// GossipNodes is the gossip fan-out.
	GossipNodes int
	// RetransmitMult sets how many times each broadcast is sent:
	// RetransmitMult * ceil(log10(n+1)).
	RetransmitMult int
	// PushPullInterval is how often a full state exchange (TCP) with one
	// random member happens; memberlist stretches it by
	// ceil(log2(n)-log2(32))+1 above 32 members. 0 disables it.
	PushPullInterval time.Duration
	// TCPTimeout bounds TCP dials and exchanges (joins, push/pull, TCP
	// pings).
	TCPTimeout time.Duration
	// DeadNodeReclaimTime is how long a failed member's name stays bound
	// to its old address; after it, the name can come back from another
	// address (a host that got a new IP). 0 means never.
	DeadNodeReclaimTime time.Duration

	// ReconnectInterval is how often serf tries to reconnect to a failed
	// member.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is kept (and
	// reconnected to) before it is reaped. Consul's default is 72h.
	ReconnectTimeout time.Duration
	// TombstoneTimeout is how long a member that left is remembered, so
	// late gossip about it is not taken as a join.
	TombstoneTimeout time.Duration
	// ReapInterval is how often failed and left members are checked
	// against ReconnectTimeout and TombstoneTimeout.
	ReapInterval time.Duration
	// BroadcastTimeout bounds how long Leave, SetTags and ForceLeave wait
	// for their broadcast to go out.
	BroadcastTimeout time.Duration
	// LeavePropagateDelay is how long Leave keeps answering probes after
	// its leave went out, so the cluster hears of the leave before it sees
	// failed probes.
	LeavePropagateDelay time.Duration

	// SnapshotPath is a file (in the data dir) where serf records the
	// members it knows; on Start the pool rejoins them by itself. Its
	// directory must exist. Empty: no snapshot.
	SnapshotPath string
	// RejoinAfterLeave keeps the snapshot's members after a graceful
	// Leave, so the next Start rejoins them; otherwise a left agent starts
	// alone.
	RejoinAfterLeave bool

	// EventHandler receives member events, one at a time, in order, from
	// one goroutine; it must not block long (events queue behind it).
	// Not called once Shutdown has started. Nil: events are dropped.
	EventHandler func(Event)
	// Logger receives the pool's logs and serf's and memberlist's, at
	// their levels. Nil: slog.Default().
	Logger *slog.Logger
}

// DefaultLANConfig returns the LAN pool settings every agent uses unless
// configured otherwise: Consul's ports and memberlist's LAN defaults,
// with the failure detector tuned so a crashed host is declared failed
// well inside 10 s up to 10,000 hosts (the package doc and README.md
// give the figures). NodeName is empty and Tags are a client in "dc1".
func DefaultLANConfig() Config {
	ml := memberlist.DefaultLANConfig()
	sf := serf.DefaultConfig()
	return Config{
		BindAddr: "0.0.0.0",
		BindPort: DefaultLANPort,
		Tags:     Tags{Role: RoleClient, Datacenter: "dc1"},

		// Tuned (memberlist/Consul: 1s, 500ms, 4, 6).
		ProbeInterval:           500 * time.Millisecond,
		ProbeTimeout:            250 * time.Millisecond,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 4,
		// Memberlist's LAN defaults.
		GossipInterval:      ml.GossipInterval, // 200ms
		GossipNodes:         ml.GossipNodes,    // 3
		RetransmitMult:      ml.RetransmitMult, // 4
		PushPullInterval:    ml.PushPullInterval,
		TCPTimeout:          ml.TCPTimeout,
		DeadNodeReclaimTime: 30 * time.Second,

		ReconnectInterval:   sf.ReconnectInterval,
		ReconnectTimeout:    72 * time.Hour, // Consul's reconnect_timeout
		TombstoneTimeout:    sf.TombstoneTimeout,
		ReapInterval:        sf.ReapInterval,
		BroadcastTimeout:    sf.BroadcastTimeout,
		LeavePropagateDelay: sf.LeavePropagateDelay,
	}
}

// DefaultWANConfig returns Consul's WAN pool settings (memberlist's WAN
// defaults, port 8302) for the wan package to build on. They are not
// tuned here. NodeName is empty and Tags are a server in "dc1"; the WAN
// pool's node names are "<node>.<dc>" by Consul's convention.
func DefaultWANConfig() Config {
	ml := memberlist.DefaultWANConfig()
	c := DefaultLANConfig()
	c.BindPort = DefaultWANPort
	c.Tags = Tags{Role: RoleServer, Datacenter: "dc1", ServerPort: 8300}
	c.ProbeInterval = ml.ProbeInterval                     // 5s
	c.ProbeTimeout = ml.ProbeTimeout                       // 3s
	c.SuspicionMult = ml.SuspicionMult                     // 6
	c.SuspicionMaxTimeoutMult = ml.SuspicionMaxTimeoutMult // 6
	c.GossipInterval = ml.GossipInterval                   // 500ms
	c.GossipNodes = ml.GossipNodes                         // 4
	c.RetransmitMult = ml.RetransmitMult
	c.PushPullInterval = ml.PushPullInterval // 60s
	c.TCPTimeout = ml.TCPTimeout             // 30s
	return c
}

// TestConfig returns settings for in-process pools on 127.0.0.1 with a
// kernel-chosen port. Timers are shrunk five- to tenfold, so with 3 members
// a stopped pool is declared failed in about half a second on an idle
// machine (suspicion timeout 3 * 1 * 100ms = 300ms after a 100ms probe),
// and a graceful Leave returns in a few hundred milliseconds:
//
//	ProbeInterval 100ms, ProbeTimeout 50ms, SuspicionMult 3,
//	SuspicionMaxTimeoutMult 4, GossipInterval 20ms, GossipNodes 3,
//	RetransmitMult 4, PushPullInterval 2s, TCPTimeout 2s,
//	DeadNodeReclaimTime 100ms, ReconnectInterval 1s, ReapInterval 1s,
//	BroadcastTimeout 2s, LeavePropagateDelay 100ms.
//
// ReconnectTimeout and TombstoneTimeout keep their long defaults so tests
// see failed and left members until they shorten them. Set NodeName.
func TestConfig() Config {
	c := DefaultLANConfig()
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 4
	c.GossipInterval = 20 * time.Millisecond
	c.GossipNodes = 3
	c.RetransmitMult = 4
	c.PushPullInterval = 2 * time.Second
	c.TCPTimeout = 2 * time.Second
	c.DeadNodeReclaimTime = 100 * time.Millisecond
	c.ReconnectInterval = time.Second
	c.ReapInterval = time.Second
	c.BroadcastTimeout = 2 * time.Second
	c.LeavePropagateDelay = 100 * time.Millisecond
	return c
}

// Validate checks c, field by field and across fields; errors wrap
// ErrInvalidConfig and name the field.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if err := validateNodeName(c.NodeName); err != nil {
		return bad("node name %q: %s", c.NodeName, err)
	}
	if c.BindAddr == "" {
		return bad("bind addr: required (an IP, or 0.0.0.0 for every interface)")
	}
	if _, err := netip.ParseAddr(c.BindAddr); err != nil {
		return bad("bind addr %q: not an IP", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return bad("bind port %d: out of range 0-65535", c.BindPort)
	}
	if c.AdvertiseAddr != "" {
		a, err := netip.ParseAddr(c.AdvertiseAddr)
		if err != nil {
			return bad("advertise addr %q: not an IP", c.AdvertiseAddr)
		}
		if a.IsUnspecified() {
			return bad("advertise addr %q: others cannot reach an unspecified address", c.AdvertiseAddr)
		}
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return bad("advertise port %d: out of range 0-65535", c.AdvertisePort)
	}
	if err := c.Tags.Validate(); err != nil {
		return fmt.Errorf("%w: tags: %w", ErrInvalidConfig, err)
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"probe interval", c.ProbeInterval},
		{"probe timeout", c.ProbeTimeout},
		{"gossip interval", c.GossipInterval},
		{"tcp timeout", c.TCPTimeout},
		{"reconnect interval", c.ReconnectInterval},
		{"reconnect timeout", c.ReconnectTimeout},
		{"tombstone timeout", c.TombstoneTimeout},
		{"reap interval", c.ReapInterval},
		{"broadcast timeout", c.BroadcastTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return bad("%s %v: must be positive", p.name, p.d)
		}
	}
	nonNegative := []struct {
		name string
		d    time.Duration
	}{
		{"push pull interval", c.PushPullInterval},
		{"dead node reclaim time", c.DeadNodeReclaimTime},
		{"leave propagate delay", c.LeavePropagateDelay},
	}
	for _, p := range nonNegative {
		if p.d < 0 {
			return bad("%s %v: must not be negative", p.name, p.d)
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		// Indirect pings run in what is left of the interval after the
		// direct ping's timeout.
		return bad("probe timeout %v: must be shorter than probe interval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.SuspicionMult < 1 {
		return bad("suspicion mult %d: must be at least 1", c.SuspicionMult)
	}
	if c.SuspicionMaxTimeoutMult < 1 {
		return bad("suspicion max timeout mult %d: must be at least 1", c.SuspicionMaxTimeoutMult)
	}
	if c.GossipNodes < 1 {
		return bad("gossip nodes %d: must be at least 1", c.GossipNodes)
	}
	if c.RetransmitMult < 1 {
		return bad("retransmit mult %d: must be at least 1", c.RetransmitMult)
	}
	return nil
}

func validateNodeName(name string) error {
	if name == "" {
		return fmt.Errorf("required")
	}
	if len(name) > MaxNodeNameLength {
		return fmt.Errorf("%d bytes, at most %d allowed", len(name), MaxNodeNameLength)
	}
	for _, r := range name {
		// '/' separates a node name from an address in memberlist joins.
		if r == '/' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("%q is not allowed", r)
		}
	}
	return nil
}

// serfConfig maps c onto serf's and memberlist's configs, starting from
// their defaults. eventCh receives serf's events.
func (c *Config) serfConfig(logger *log.Logger, eventCh chan serf.Event) *serf.Config {
	ml := memberlist.DefaultLANConfig()
	ml.Name = c.NodeName
	ml.BindAddr = c.BindAddr
	ml.BindPort = c.BindPort
	ml.AdvertiseAddr = c.AdvertiseAddr
	ml.AdvertisePort = c.AdvertisePort
	if ml.AdvertisePort == 0 {
		ml.AdvertisePort = c.BindPort
	}
	ml.ProbeInterval = c.ProbeInterval
	ml.ProbeTimeout = c.ProbeTimeout
	ml.SuspicionMult = c.SuspicionMult
	ml.SuspicionMaxTimeoutMult = c.SuspicionMaxTimeoutMult
	ml.GossipInterval = c.GossipInterval
	ml.GossipNodes = c.GossipNodes
	ml.RetransmitMult = c.RetransmitMult
	ml.PushPullInterval = c.PushPullInterval
	ml.TCPTimeout = c.TCPTimeout
	ml.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	ml.Logger = logger
	ml.LogOutput = nil

	sc := serf.DefaultConfig()
	sc.NodeName = c.NodeName
	sc.Tags = c.Tags.Encode()
	sc.EventCh = eventCh
	sc.SnapshotPath = c.SnapshotPath
	sc.RejoinAfterLeave = c.RejoinAfterLeave
	sc.ReconnectInterval = c.ReconnectInterval
	sc.ReconnectTimeout = c.ReconnectTimeout
	sc.TombstoneTimeout = c.TombstoneTimeout
	sc.ReapInterval = c.ReapInterval
	sc.BroadcastTimeout = c.BroadcastTimeout
	sc.LeavePropagateDelay = c.LeavePropagateDelay
	sc.MemberlistConfig = ml
	sc.Logger = logger
	sc.LogOutput = nil
	return sc
}
