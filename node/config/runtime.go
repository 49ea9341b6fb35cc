package config

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/catalog"
)

// PortDisabled as a port turns its listener off, as -1 does in Consul.
const PortDisabled = -1

// Runtime is the agent's built configuration: every source merged, defaults
// applied, values checked and derived values filled in. Load returns it; the
// node maps it into each package's Config. It is plain data, safe to read
// from many goroutines once built.
type Runtime struct {
	// DevMode is set by -dev. InMemory is set when the agent keeps no
	// state on disk: dev mode without a data_dir.
	DevMode  bool
	InMemory bool
	// ConfigFiles are the files that were loaded, in order.
	ConfigFiles []string

	// Datacenter is lower-cased and a valid DNS label.
	Datacenter string
	// NodeName defaults to the hostname.
	NodeName string
	// NodeID is a lower-case UUID, or empty when not configured: the node
	// then generates one and keeps it in the data dir.
	NodeID string
	// DataDir is cleaned; empty only when InMemory.
	DataDir  string
	NodeMeta map[string]string

	ServerMode      bool
	Bootstrap       bool
	BootstrapExpect int

	// BindAddr is the address gossip and server RPC listen on.
	BindAddr netip.Addr
	// AdvertiseAddr is the address other agents reach this one at:
	// advertise_addr, else bind_addr when that is a specific address. It is
	// the zero Addr when bind_addr is unspecified (0.0.0.0 or ::) and no
	// advertise_addr is set; the node then picks an interface address when
	// it starts, as Consul does.
	AdvertiseAddr netip.Addr
	// ClientAddrs are the addresses the HTTP API and DNS listen on.
	ClientAddrs []netip.Addr

	// Ports; PortDisabled (-1) turns a listener off.
	HTTPPort    int
	DNSPort     int
	ServerPort  int
	SerfLANPort int
	SerfWANPort int

	// Domain is lower-cased and ends with a dot ("consul.").
	Domain string
	// AltDomain is "" or, like Domain, lower-cased with a final dot and
	// different from Domain.
	AltDomain string
	// LogLevel is one of trace, debug, info, warn, error.
	LogLevel string

	EnableScriptChecks      bool
	EnableLocalScriptChecks bool
	// EnableDebug serves Go's profiles under /debug/pprof/.
	EnableDebug bool

	RetryJoin []string
	StartJoin []string
	// RetryJoinWAN and StartJoinWAN are servers of other datacenters a
	// server joins the WAN pool through (servers only).
	RetryJoinWAN []string
	StartJoinWAN []string
	// AdvertiseAddrWAN is what other datacenters reach this server at:
	// advertise_addr_wan, else AdvertiseAddr (zero like it when unset).
	AdvertiseAddrWAN netip.Addr
	// LeaveOnTerminate defaults to !ServerMode, SkipLeaveOnInterrupt to
	// ServerMode: on SIGTERM/SIGINT a client leaves, a server only stops.
	LeaveOnTerminate     bool
	SkipLeaveOnInterrupt bool

	// CheckUpdateInterval is how often an unchanged check output is still
	// written to the servers; 0 writes every change.
	CheckUpdateInterval time.Duration
	// ReconnectTimeout is how long a failed node stays before it is reaped.
	ReconnectTimeout time.Duration
	// RaftMultiplier scales the Raft timings: 1 (the default) suits a LAN,
	// up to 10 for slow or loaded machines.
	RaftMultiplier int

	DNS DNSConfig
	// Cache is the agent cache of a client agent.
	Cache CacheConfig
	// Limits are what a server grants each client.
	Limits LimitsConfig
	// Autopilot is how a leader manages its datacenter's servers.
	Autopilot AutopilotConfig

	// Services and Checks are the definitions from the config files,
	// validated and normalized, in load order. Service IDs are unique, and
	// check IDs are unique across both.
	Services []*ServiceDefinition
	Checks   []*CheckDefinition
}

// CacheConfig is the built cache block.
type CacheConfig struct {
	EntryTTL     time.Duration
	MaxEntries   int
	StaleIfError time.Duration
}

// AutopilotConfig is the built autopilot block (see FileAutopilot).
type AutopilotConfig struct {
	CleanupDeadServers      bool
	LastContactThreshold    time.Duration
	MaxTrailingLogs         int
	ServerStabilizationTime time.Duration
	MinQuorum               int
}

// LimitsConfig is the built limits block; a zero means no limit.
type LimitsConfig struct {
	RPCRatePerClient            int
	RPCBurstPerClient           int
	MaxBlockingQueriesPerClient int
}

// DNSConfig is the built dns_config block, plus the recursors.
type DNSConfig struct {
	AllowStale bool
	MaxStale   time.Duration
	NodeTTL    time.Duration
	// ServiceTTL maps service names, or prefixes ending in '*' ("web*",
	// "*"), to TTLs; "*" is always present. See TTLForService.
	ServiceTTL  map[string]time.Duration
	OnlyPassing bool
	// ARecordLimit and UDPAnswerLimit cap answers; 0 means no cap beyond
	// what fits.
	ARecordLimit   int
	UDPAnswerLimit int
	// EnableTruncate sets TC on UDP answers that had to drop records.
	EnableTruncate bool
	// Recursors are "ip:port" (port 53 unless given).
	Recursors []string
	// RecursorTimeout bounds each exchange with a recursor.
	RecursorTimeout time.Duration
}

// TTLForService returns the TTL for a service's records: an exact entry,
// else the longest matching prefix entry ("web*"), else "*". Names match
// case-insensitively, as DNS does.
func (d DNSConfig) TTLForService(name string) time.Duration {
	name = strings.ToLower(name)
	best, bestLen := time.Duration(0), -1
	for k, ttl := range d.ServiceTTL {
		k = strings.ToLower(k)
		if k == name {
			return ttl
		}
		if prefix, ok := strings.CutSuffix(k, "*"); ok && strings.HasPrefix(name, prefix) && len(prefix) > bestLen {
			best, bestLen = ttl, len(prefix)
		}
	}
	return best
}

// SlogLevel returns LogLevel as a slog.Level; trace is LevelDebug-4.
func (r *Runtime) SlogLevel() slog.Level {
	switch r.LogLevel {
	case "trace":
		return slog.LevelDebug - 4
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// HTTPAddrs returns the HTTP API's listen addresses (host:port, one per
// client address), or nil when it is disabled.
func (r *Runtime) HTTPAddrs() []string { return r.clientListeners(r.HTTPPort) }

// DNSAddrs returns the DNS server's listen addresses, or nil when disabled.
func (r *Runtime) DNSAddrs() []string { return r.clientListeners(r.DNSPort) }

func (r *Runtime) clientListeners(port int) []string {
	if port == PortDisabled {
		return nil
	}
	out := make([]string, len(r.ClientAddrs))
	for i, a := range r.ClientAddrs {
		out[i] = net.JoinHostPort(a.String(), strconv.Itoa(port))
	}
	return out
}

// build checks the merged configuration and produces the Runtime.
func (b *builder) build(dev bool, hostErr error) (*Runtime, error) {
	m := &b.merged
	r := &Runtime{DevMode: dev}

	// Identity.
	r.Datacenter = strings.ToLower(*m.Datacenter)
	if !validLabel(r.Datacenter) {
		return nil, b.origin("datacenter").errorf("%q is not a valid DNS label (letters, digits and dashes)", *m.Datacenter)
	}
	if m.NodeName == nil {
		return nil, origin{key: "node_name"}.errorf("cannot default to the hostname (%v); set node_name or -node", hostErr)
	}
	r.NodeName = *m.NodeName
	if !validNodeName(r.NodeName) {
		o := b.origin("node_name")
		if o.prefix == "default" {
			return nil, o.errorf("the hostname %q is not a valid node name (letters, digits, dashes and dots); set node_name or -node", r.NodeName)
		}
		return nil, o.errorf("%q is not a valid node name (letters, digits, dashes and dots)", r.NodeName)
	}
	if m.NodeID != nil && *m.NodeID != "" {
		if !validUUID(*m.NodeID) {
			return nil, b.origin("node_id").errorf("%q is not a UUID", *m.NodeID)
		}
		r.NodeID = strings.ToLower(*m.NodeID)
	}
	if m.DataDir != nil && *m.DataDir != "" {
		r.DataDir = filepath.Clean(*m.DataDir)
	}
	switch {
	case r.DataDir == "" && !dev:
		return nil, origin{key: "data_dir"}.errorf("required (set data_dir or -data-dir, or use -dev for an in-memory agent)")
	case r.DataDir == "":
		r.InMemory = true
	}
	if err := b.checkMeta("node_meta", m.NodeMeta); err != nil {
		return nil, err
	}
	r.NodeMeta = m.NodeMeta

	// Server role.
	r.ServerMode = *m.Server
	r.Bootstrap = *m.Bootstrap
	r.BootstrapExpect = *m.BootstrapExpect
	switch {
	case r.BootstrapExpect < 0:
		return nil, b.origin("bootstrap_expect").errorf("must not be negative")
	case r.Bootstrap && r.BootstrapExpect > 0:
		return nil, b.origin("bootstrap_expect").errorf("cannot be used with bootstrap (set at %s)", b.origin("bootstrap"))
	case r.BootstrapExpect > 0 && !r.ServerMode:
		return nil, b.origin("bootstrap_expect").errorf("requires server mode (server = true, or -server)")
	case r.Bootstrap && !r.ServerMode:
		return nil, b.origin("bootstrap").errorf("requires server mode (server = true, or -server)")
	}
	switch {
	case r.BootstrapExpect == 1:
		b.warn("bootstrap_expect = 1 is the same as bootstrap: this server will elect itself")
	case r.BootstrapExpect > 1 && r.BootstrapExpect%2 == 0:
		b.warn("bootstrap_expect = %d: an even number of servers tolerates no more failures than one fewer", r.BootstrapExpect)
	}
	if r.Bootstrap && !dev {
		b.warn("bootstrap mode: this server elects itself; do not enable it on more than one server")
	}

	// Addresses and ports.
	if err := b.buildAddrs(r); err != nil {
		return nil, err
	}
	ports := []struct {
		canon string
		val   *int
		dst   *int
	}{
		{"ports.http", m.Ports.HTTP, &r.HTTPPort},
		{"ports.dns", m.Ports.DNS, &r.DNSPort},
		{"ports.server", m.Ports.Server, &r.ServerPort},
		{"ports.serf_lan", m.Ports.SerfLAN, &r.SerfLANPort},
		{"ports.serf_wan", m.Ports.SerfWAN, &r.SerfWANPort},
	}
	for _, p := range ports {
		if *p.val < PortDisabled || *p.val > 65535 {
			return nil, b.origin(p.canon).errorf("must be between 0 and 65535 (or -1 to disable), got %d", *p.val)
		}
		*p.dst = *p.val
	}
	if r.ServerMode {
		if r.ServerPort == PortDisabled {
			return nil, b.origin("ports.server").errorf("cannot be disabled on a server")
		}
	}
	if r.SerfLANPort == PortDisabled {
		return nil, b.origin("ports.serf_lan").errorf("cannot be disabled: every agent gossips")
	}

	// Naming and logging.
	r.Domain = strings.ToLower(*m.Domain)
	if !strings.HasSuffix(r.Domain, ".") {
		r.Domain += "."
	}
	if !validDomain(r.Domain) {
		return nil, b.origin("domain").errorf("%q is not a valid DNS domain", *m.Domain)
	}
	if m.AltDomain != nil && *m.AltDomain != "" {
		r.AltDomain = strings.ToLower(*m.AltDomain)
		if !strings.HasSuffix(r.AltDomain, ".") {
			r.AltDomain += "."
		}
		switch {
		case !validDomain(r.AltDomain):
			return nil, b.origin("alt_domain").errorf("%q is not a valid DNS domain", *m.AltDomain)
		case r.AltDomain == r.Domain:
			return nil, b.origin("alt_domain").errorf("%q is the same as domain", *m.AltDomain)
		}
	}
	switch lvl := strings.ToLower(strings.TrimSpace(*m.LogLevel)); lvl {
	case "trace", "debug", "info", "warn", "error":
		r.LogLevel = lvl
	case "warning":
		r.LogLevel = "warn"
	case "err":
		r.LogLevel = "error"
	default:
		return nil, b.origin("log_level").errorf("must be trace, debug, info, warn or error, got %q", *m.LogLevel)
	}

	// Membership.
	r.EnableScriptChecks = *m.EnableScriptChecks
	r.EnableLocalScriptChecks = *m.EnableLocalScriptChecks
	r.EnableDebug = *m.EnableDebug
	if r.EnableScriptChecks {
		b.warn("enable_script_checks: any client of the HTTP API can run commands on this host; prefer enable_local_script_checks")
	}
	r.RetryJoin = m.RetryJoin
	r.StartJoin = m.StartJoin
	r.RetryJoinWAN = m.RetryJoinWAN
	r.StartJoinWAN = m.StartJoinWAN
	if !r.ServerMode && len(r.RetryJoinWAN)+len(r.StartJoinWAN) > 0 {
		canon := "retry_join_wan"
		if len(r.RetryJoinWAN) == 0 {
			canon = "start_join_wan"
		}
		return nil, b.origin(canon).errorf("only servers join the WAN pool; set server = true or join a server of this datacenter instead")
	}
	if r.ServerMode && r.SerfWANPort == PortDisabled && len(r.RetryJoinWAN)+len(r.StartJoinWAN) > 0 {
		return nil, b.origin("ports.serf_wan").errorf("is disabled, but retry_join_wan or start_join_wan asks to join the WAN pool")
	}
	r.LeaveOnTerminate = !r.ServerMode
	if m.LeaveOnTerminate != nil {
		r.LeaveOnTerminate = *m.LeaveOnTerminate
	}
	r.SkipLeaveOnInterrupt = r.ServerMode
	if m.SkipLeaveOnInterrupt != nil {
		r.SkipLeaveOnInterrupt = *m.SkipLeaveOnInterrupt
	}
	r.CheckUpdateInterval = *m.CheckUpdateInterval
	if r.CheckUpdateInterval < 0 {
		return nil, b.origin("check_update_interval").errorf("must not be negative")
	}
	r.ReconnectTimeout = *m.ReconnectTimeout
	switch {
	case r.ReconnectTimeout <= 0:
		return nil, b.origin("reconnect_timeout").errorf("must be positive")
	case r.ReconnectTimeout < 8*time.Hour:
		b.warn("reconnect_timeout = %s: Consul requires at least 8h; a node away for longer is forgotten", r.ReconnectTimeout)
	}

	r.RaftMultiplier = *m.Performance.RaftMultiplier
	if r.RaftMultiplier < 1 || r.RaftMultiplier > 10 {
		return nil, b.origin("performance.raft_multiplier").errorf("must be between 1 and 10, got %d", r.RaftMultiplier)
	}

	if err := b.buildCacheAndLimits(r); err != nil {
		return nil, err
	}
	ap := &m.Autopilot
	r.Autopilot = AutopilotConfig{
		CleanupDeadServers:      *ap.CleanupDeadServers,
		LastContactThreshold:    *ap.LastContactThreshold,
		MaxTrailingLogs:         *ap.MaxTrailingLogs,
		ServerStabilizationTime: *ap.ServerStabilizationTime,
		MinQuorum:               *ap.MinQuorum,
	}
	// The bounds of the settings a leader stores (catalog.AutopilotConfig).
	switch ap := r.Autopilot; {
	case ap.LastContactThreshold <= 0 || ap.LastContactThreshold > catalog.MaxAutopilotDuration:
		return nil, b.origin("autopilot.last_contact_threshold").errorf("must be positive and at most %v", catalog.MaxAutopilotDuration)
	case ap.MaxTrailingLogs < 0 || uint64(ap.MaxTrailingLogs) > catalog.MaxAutopilotTrailingLogs:
		return nil, b.origin("autopilot.max_trailing_logs").errorf("must be between 0 and %d", catalog.MaxAutopilotTrailingLogs)
	case ap.ServerStabilizationTime < 0 || ap.ServerStabilizationTime > catalog.MaxAutopilotDuration:
		return nil, b.origin("autopilot.server_stabilization_time").errorf("must be between 0 and %v", catalog.MaxAutopilotDuration)
	case ap.MinQuorum < 0 || ap.MinQuorum > catalog.MaxAutopilotMinQuorum:
		return nil, b.origin("autopilot.min_quorum").errorf("must be between 0 and %d", catalog.MaxAutopilotMinQuorum)
	}
	if err := b.buildDNS(r); err != nil {
		return nil, err
	}
	if err := b.buildDefinitions(r); err != nil {
		return nil, err
	}
	return r, nil
}

// advertiseAddr reads an address others reach this agent at (canon names
// the setting); the zero Addr when it is unset or blank.
func (b *builder) advertiseAddr(canon string, v *string) (netip.Addr, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return netip.Addr{}, nil
	}
	adv, err := netip.ParseAddr(strings.TrimSpace(*v))
	if err != nil {
		return netip.Addr{}, b.origin(canon).errorf("%q is not an IP address", *v)
	}
	if adv.IsUnspecified() {
		return netip.Addr{}, b.origin(canon).errorf("%s cannot be reached; give a specific address", adv)
	}
	return adv.Unmap(), nil
}

func (b *builder) buildAddrs(r *Runtime) error {
	m := &b.merged
	bind, err := netip.ParseAddr(strings.TrimSpace(*m.BindAddr))
	if err != nil {
		return b.origin("bind_addr").errorf("%q is not an IP address", *m.BindAddr)
	}
	r.BindAddr = bind.Unmap()
	if r.AdvertiseAddr, err = b.advertiseAddr("advertise_addr", m.AdvertiseAddr); err != nil {
		return err
	}
	if !r.AdvertiseAddr.IsValid() && !r.BindAddr.IsUnspecified() {
		r.AdvertiseAddr = r.BindAddr
	}
	if r.AdvertiseAddrWAN, err = b.advertiseAddr("advertise_addr_wan", m.AdvertiseAddrWAN); err != nil {
		return err
	}
	if !r.AdvertiseAddrWAN.IsValid() {
		r.AdvertiseAddrWAN = r.AdvertiseAddr
	}
	for _, s := range strings.Fields(*m.ClientAddr) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return b.origin("client_addr").errorf("%q is not an IP address", s)
		}
		r.ClientAddrs = append(r.ClientAddrs, a.Unmap())
	}
	if len(r.ClientAddrs) == 0 {
		return b.origin("client_addr").errorf("needs at least one address")
	}
	return nil
}

func (b *builder) buildCacheAndLimits(r *Runtime) error {
	c, l := &b.merged.Cache, &b.merged.Limits
	r.Cache = CacheConfig{EntryTTL: *c.EntryTTL, MaxEntries: *c.MaxEntries, StaleIfError: *c.StaleIfError}
	r.Limits = LimitsConfig{
		RPCRatePerClient:            *l.RPCRatePerClient,
		RPCBurstPerClient:           *l.RPCBurstPerClient,
		MaxBlockingQueriesPerClient: *l.MaxBlockingQueriesPerClient,
	}
	switch {
	case r.Cache.EntryTTL < time.Second:
		return b.origin("cache.entry_ttl").errorf("must be at least 1s")
	case r.Cache.MaxEntries < 1:
		return b.origin("cache.max_entries").errorf("must be at least 1")
	case r.Cache.StaleIfError < 0:
		return b.origin("cache.stale_if_error").errorf("must not be negative")
	case r.Limits.RPCRatePerClient < 0:
		return b.origin("limits.rpc_rate_per_client").errorf("must not be negative")
	case r.Limits.RPCBurstPerClient < 0:
		return b.origin("limits.rpc_burst_per_client").errorf("must not be negative")
	case r.Limits.RPCRatePerClient > 0 && r.Limits.RPCBurstPerClient < 1:
		return b.origin("limits.rpc_burst_per_client").errorf("must be at least 1 with a rate limit")
	case r.Limits.MaxBlockingQueriesPerClient < 0:
		return b.origin("limits.max_blocking_queries_per_client").errorf("must not be negative")
	}
	return nil
}

func (b *builder) buildDNS(r *Runtime) error {
	d := &b.merged.DNS
	r.DNS = DNSConfig{
		AllowStale:      *d.AllowStale,
		MaxStale:        *d.MaxStale,
		NodeTTL:         *d.NodeTTL,
		ServiceTTL:      d.ServiceTTL,
		OnlyPassing:     *d.OnlyPassing,
		ARecordLimit:    *d.ARecordLimit,
		UDPAnswerLimit:  *d.UDPAnswerLimit,
		EnableTruncate:  *d.EnableTruncate,
		RecursorTimeout: *d.RecursorTimeout,
	}
	switch {
	case r.DNS.MaxStale < 0:
		return b.origin("dns_config.max_stale").errorf("must not be negative")
	case r.DNS.NodeTTL < 0:
		return b.origin("dns_config.node_ttl").errorf("must not be negative")
	case r.DNS.ARecordLimit < 0:
		return b.origin("dns_config.a_record_limit").errorf("must not be negative")
	case r.DNS.UDPAnswerLimit < 0:
		return b.origin("dns_config.udp_answer_limit").errorf("must not be negative")
	case r.DNS.RecursorTimeout <= 0:
		return b.origin("dns_config.recursor_timeout").errorf("must be positive")
	}
	for _, k := range sortedMapKeys(r.DNS.ServiceTTL) {
		o := b.origin("dns_config.service_ttl[" + k + "]")
		if k == "" || strings.Contains(strings.TrimSuffix(k, "*"), "*") {
			return o.errorf("%q: a wildcard '*' may only end a name", k)
		}
		if r.DNS.ServiceTTL[k] < 0 {
			return o.errorf("must not be negative")
		}
	}
	for i, s := range b.merged.Recursors {
		o := b.origin("recursors[" + strconv.Itoa(i) + "]")
		s = strings.TrimSpace(s)
		if ap, err := netip.ParseAddrPort(s); err == nil {
			r.DNS.Recursors = append(r.DNS.Recursors, ap.String())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return o.errorf("%q is not an IP address or ip:port", s)
		}
		r.DNS.Recursors = append(r.DNS.Recursors, netip.AddrPortFrom(a, 53).String())
	}
	return nil
}

// checkMeta applies the metadata rules with each entry's origin.
func (b *builder) checkMeta(canon string, meta map[string]string) error {
	if err := validateMeta("", meta); err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			return err
		}
		if fe.Path == "" {
			return b.origin(canon).wrap(fe.Err)
		}
		return b.origin(canon + "[" + fe.Path + "]").wrap(fe.Err)
	}
	return nil
}

// buildDefinitions collects services and checks from all sources (each was
// validated when its file was parsed) and checks what spans sources: unique
// IDs, and script checks only where enabled.
func (b *builder) buildDefinitions(r *Runtime) error {
	r.Services = b.merged.Services
	r.Checks = b.merged.Checks
	scriptsOK := r.EnableScriptChecks || r.EnableLocalScriptChecks
	serviceAt := make(map[string]origin)
	checkAt := make(map[string]origin)
	addCheck := func(c *CheckDefinition, o origin) error {
		if prev, dup := checkAt[c.ID]; dup {
			return o.errorf("duplicate check ID %q (also at %s)", c.ID, prev)
		}
		checkAt[c.ID] = o
		if c.Type() == CheckTypeScript && !scriptsOK {
			return o.errorf("check %q runs a script, but script checks are disabled; set enable_local_script_checks", c.ID)
		}
		return nil
	}
	for i, s := range r.Services {
		o := b.origin("services[" + strconv.Itoa(i) + "]")
		if prev, dup := serviceAt[s.ID]; dup {
			return o.errorf("duplicate service ID %q (also at %s)", s.ID, prev)
		}
		serviceAt[s.ID] = o
		for _, c := range s.AllChecks() {
			if err := addCheck(c, o); err != nil {
				return err
			}
		}
	}
	for i, c := range r.Checks {
		if err := addCheck(c, b.origin("checks["+strconv.Itoa(i)+"]")); err != nil {
			return err
		}
	}
	return nil
}
