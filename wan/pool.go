package wan

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/meshd/meshd/gossip"
)

// DefaultPort is the WAN gossip port (Consul's).
const DefaultPort = gossip.DefaultWANPort

// Config configures a Pool. Start from DefaultConfig and set NodeName,
// Datacenter and ServerPort.
type Config struct {
	// NodeName is the server's node name; its WAN member name is
	// "<NodeName>.<Datacenter>".
	NodeName string
	// Datacenter is the server's datacenter.
	Datacenter string
	// NodeID is the server's node ID; optional.
	NodeID string
	// ServerPort is the server's RPC port, which other datacenters call.
	ServerPort int
	// Build is the meshd version; optional.
	Build string

	// BindAddr and BindPort are where the WAN gossip listens (TCP and
	// UDP); BindPort 0 lets the kernel choose. AdvertiseAddr (and
	// AdvertisePort, 0 for the bound port) are what other datacenters
	// reach; empty means the bind address, as in gossip.Config.
	BindAddr      string
	BindPort      int
	AdvertiseAddr string
	AdvertisePort int

	// SnapshotPath, when set, records the members known so a restarted
	// server rejoins the WAN pool by itself.
	SnapshotPath string
	// ReconnectTimeout is how long a failed server of another datacenter
	// is kept before it is forgotten; 0 keeps the default (72 h).
	ReconnectTimeout time.Duration

	// EventHandler, when set, hears of WAN member events (one goroutine,
	// in order; it must not block long).
	EventHandler func(gossip.Event)
	// Tune edits the gossip settings last (tests shrink the timings with
	// it). Nil: memberlist's WAN timings.
	Tune func(*gossip.Config)
	// Logger receives the pool's logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the WAN settings every server uses unless
// configured otherwise: every interface, port 8302, memberlist's WAN
// timings.
func DefaultConfig() Config {
	return Config{BindAddr: "0.0.0.0", BindPort: DefaultPort}
}

// MemberName is a server's name in the WAN pool: "<node>.<dc>".
func MemberName(node, dc string) string { return node + "." + dc }

// SplitMemberName undoes MemberName: the node and the datacenter. The
// datacenter is after the last dot, as datacenter names have none.
func SplitMemberName(name string) (node, dc string, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// Pool is a server's membership in the WAN pool. Create it with New, then
// Start; end with Leave (graceful) and Shutdown. Its methods are safe for
// concurrent use.
type Pool struct {
	gossip *gossip.Pool
	router *Router
}

// New checks cfg and returns a pool that is not started.
func New(cfg Config) (*Pool, error) {
	if cfg.NodeName == "" || cfg.Datacenter == "" {
		return nil, fmt.Errorf("%w: wan: node name and datacenter are required", gossip.ErrInvalidConfig)
	}
	g := gossip.DefaultWANConfig()
	g.NodeName = MemberName(cfg.NodeName, cfg.Datacenter)
	g.BindAddr, g.BindPort = cfg.BindAddr, cfg.BindPort
	g.AdvertiseAddr, g.AdvertisePort = cfg.AdvertiseAddr, cfg.AdvertisePort
	g.Tags = gossip.Tags{Role: gossip.RoleServer, Datacenter: cfg.Datacenter, NodeID: cfg.NodeID,
		ServerPort: cfg.ServerPort, Build: cfg.Build}
	g.SnapshotPath = cfg.SnapshotPath
	if cfg.ReconnectTimeout > 0 {
		g.ReconnectTimeout = cfg.ReconnectTimeout
	}
	g.EventHandler = cfg.EventHandler
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	g.Logger = logger.With("pool", "wan")
	if cfg.Tune != nil {
		cfg.Tune(&g)
	}
	p, err := gossip.New(g)
	if err != nil {
		return nil, fmt.Errorf("wan: %w", err)
	}
	return &Pool{gossip: p, router: NewRouter(cfg.Datacenter, p)}, nil
}

// Start binds the WAN gossip port and starts serf.
func (p *Pool) Start(ctx context.Context) error {
	if err := p.gossip.Start(ctx); err != nil {
		return fmt.Errorf("wan: %w", err)
	}
	return nil
}

// Join contacts servers of other (or this) datacenters at addrs
// ("host:port", or "host" for port 8302) and returns how many it reached.
func (p *Pool) Join(addrs []string) (int, error) { return p.gossip.Join(addrs) }

// RetryJoin joins addrs, retrying every interval until one is reached or
// ctx ends (-retry-join-wan).
func (p *Pool) RetryJoin(ctx context.Context, addrs []string, interval time.Duration, logger *slog.Logger) error {
	return gossip.RetryJoin(ctx, p.gossip, addrs, interval, logger)
}

// Members returns every server the pool knows, of every datacenter,
// sorted by member name.
func (p *Pool) Members() []gossip.Member { return p.gossip.Members() }

// LocalMember returns this server as the WAN pool sees it.
func (p *Pool) LocalMember() gossip.Member { return p.gossip.LocalMember() }

// Addr returns the advertised WAN gossip address and port.
func (p *Pool) Addr() (string, int) { return p.gossip.Addr() }

// ForceLeave marks a failed WAN member (by its "<node>.<dc>" name) left.
func (p *Pool) ForceLeave(name string, prune bool) error { return p.gossip.ForceLeave(name, prune) }

// Router returns the pool's router.
func (p *Pool) Router() *Router { return p.router }

// Leave leaves the WAN pool gracefully; call Shutdown afterwards.
func (p *Pool) Leave(ctx context.Context) error { return p.gossip.Leave(ctx) }

// Shutdown stops the pool and waits for its goroutines.
func (p *Pool) Shutdown(ctx context.Context) error { return p.gossip.Shutdown(ctx) }

// TestTimings is a Config.Tune for in-process pools: gossip.TestConfig's
// shrunk timings in place of the WAN ones, keeping the addresses and
// ports configured.
func TestTimings(c *gossip.Config) {
	t := gossip.TestConfig()
	t.BindAddr, t.BindPort, t.AdvertiseAddr, t.AdvertisePort = c.BindAddr, c.BindPort, c.AdvertiseAddr, c.AdvertisePort
	t.NodeName, t.Tags, t.SnapshotPath = c.NodeName, c.Tags, c.SnapshotPath
	t.EventHandler, t.Logger = c.EventHandler, c.Logger
	t.ReconnectTimeout = c.ReconnectTimeout
	*c = t
}
