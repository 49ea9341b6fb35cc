package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File is what one source of configuration says: one config file, the
// -dev preset, or the command-line flags. Every setting is a pointer, a slice
// or a map, so that "not set" (nil) differs from "set to the zero value";
// Load merges Files in order and builds a Runtime from the result.
//
// The mapstructure tags are the keys of Consul's config files. Settings
// without a tag decode by field name, ignoring case, '_' and '-'.
type File struct {
	Datacenter      *string `mapstructure:"datacenter"`
	NodeName        *string `mapstructure:"node_name"`
	NodeID          *string `mapstructure:"node_id"`
	DataDir         *string `mapstructure:"data_dir"`
	Server          *bool   `mapstructure:"server"`
	Bootstrap       *bool   `mapstructure:"bootstrap"`
	BootstrapExpect *int    `mapstructure:"bootstrap_expect"`

	BindAddr      *string `mapstructure:"bind_addr"`
	AdvertiseAddr *string `mapstructure:"advertise_addr"`
	// AdvertiseAddrWAN is the address other datacenters reach this
	// server's WAN gossip and RPC at; default advertise_addr.
	AdvertiseAddrWAN *string `mapstructure:"advertise_addr_wan"`
	// ClientAddr is one address or several separated by spaces.
	ClientAddr *string   `mapstructure:"client_addr"`
	Ports      FilePorts `mapstructure:"ports"`

	Domain    *string `mapstructure:"domain"`
	AltDomain *string `mapstructure:"alt_domain"`
	LogLevel  *string `mapstructure:"log_level"`

	EnableScriptChecks      *bool `mapstructure:"enable_script_checks"`
	EnableLocalScriptChecks *bool `mapstructure:"enable_local_script_checks"`
	EnableDebug             *bool `mapstructure:"enable_debug"`

	RetryJoin            []string `mapstructure:"retry_join"`
	StartJoin            []string `mapstructure:"start_join"`
	RetryJoinWAN         []string `mapstructure:"retry_join_wan"`
	StartJoinWAN         []string `mapstructure:"start_join_wan"`
	LeaveOnTerminate     *bool    `mapstructure:"leave_on_terminate"`
	SkipLeaveOnInterrupt *bool    `mapstructure:"skip_leave_on_interrupt"`

	CheckUpdateInterval *time.Duration `mapstructure:"check_update_interval"`
	ReconnectTimeout    *time.Duration `mapstructure:"reconnect_timeout"`

	Performance FilePerformance `mapstructure:"performance"`
	Cache       FileCache       `mapstructure:"cache"`
	Limits      FileLimits      `mapstructure:"limits"`
	Autopilot   FileAutopilot   `mapstructure:"autopilot"`

	NodeMeta  map[string]string `mapstructure:"node_meta"`
	DNS       FileDNS           `mapstructure:"dns_config"`
	Recursors []string          `mapstructure:"recursors"`

	// Service is a single `service` block; Services the `services` blocks
	// or list. Load registers both.
	Service  *ServiceDefinition   `mapstructure:"service"`
	Services []*ServiceDefinition `mapstructure:"services"`
	// Check and Checks are node-level (or, with ServiceID, service-level)
	// checks, like Service and Services.
	Check  *CheckDefinition   `mapstructure:"check"`
	Checks []*CheckDefinition `mapstructure:"checks"`
}

// FilePorts is the `ports` block. -1 disables a listener, as in Consul.
type FilePorts struct {
	HTTP    *int `mapstructure:"http"`
	DNS     *int `mapstructure:"dns"`
	Server  *int `mapstructure:"server"`
	SerfLAN *int `mapstructure:"serf_lan"`
	SerfWAN *int `mapstructure:"serf_wan"`
}

// FilePerformance is the `performance` block.
type FilePerformance struct {
	// RaftMultiplier scales the Raft timings (1 = fastest, for a LAN; up
	// to 10 for slow or loaded machines), as Consul's raft_multiplier.
	RaftMultiplier *int `mapstructure:"raft_multiplier"`
}

// FileCache is the `cache` block: the agent cache of a client agent.
type FileCache struct {
	// EntryTTL is how long an entry nobody reads keeps being watched.
	EntryTTL *time.Duration `mapstructure:"entry_ttl"`
	// MaxEntries bounds the entries, and so the watches on the servers.
	MaxEntries *int `mapstructure:"max_entries"`
	// StaleIfError is how long an entry keeps answering after the servers
	// stopped confirming it (they are unreachable).
	StaleIfError *time.Duration `mapstructure:"stale_if_error"`
}

// FileLimits is the `limits` block: what a server grants each client.
type FileLimits struct {
	// RPCRatePerClient is the steady rate of RPCs (per second) a server
	// takes from one agent; 0 means no limit. RPCBurstPerClient is the
	// burst above it.
	RPCRatePerClient  *int `mapstructure:"rpc_rate_per_client"`
	RPCBurstPerClient *int `mapstructure:"rpc_burst_per_client"`
	// MaxBlockingQueriesPerClient bounds the blocking queries a server
	// holds open for one agent (RPC) or one address (HTTP); 0: no limit.
	MaxBlockingQueriesPerClient *int `mapstructure:"max_blocking_queries_per_client"`
}

// FileAutopilot is the `autopilot` block: how the leader of a datacenter
// manages its servers, with Consul's keys and defaults.
type FileAutopilot struct {
	// CleanupDeadServers lets the leader remove a server gossip declared
	// failed from the Raft configuration (after a grace, and only while a
	// majority of healthy voters remains).
	CleanupDeadServers *bool `mapstructure:"cleanup_dead_servers"`
	// LastContactThreshold: a server that has not heard from the leader
	// for longer is unhealthy.
	LastContactThreshold *time.Duration `mapstructure:"last_contact_threshold"`
	// MaxTrailingLogs: a server more entries behind the leader than this
	// is unhealthy.
	MaxTrailingLogs *int `mapstructure:"max_trailing_logs"`
	// ServerStabilizationTime is how long a new server must stay healthy
	// before it gets a vote.
	ServerStabilizationTime *time.Duration `mapstructure:"server_stabilization_time"`
	// MinQuorum: dead servers are never removed below this many voters.
	MinQuorum *int `mapstructure:"min_quorum"`
}

// FileDNS is the `dns_config` block.
type FileDNS struct {
	AllowStale *bool          `mapstructure:"allow_stale"`
	MaxStale   *time.Duration `mapstructure:"max_stale"`
	NodeTTL    *time.Duration `mapstructure:"node_ttl"`
	// ServiceTTL maps a service name, or a prefix ending in '*', to its TTL.
	ServiceTTL      map[string]time.Duration `mapstructure:"service_ttl"`
	OnlyPassing     *bool                    `mapstructure:"only_passing"`
	ARecordLimit    *int                     `mapstructure:"a_record_limit"`
	UDPAnswerLimit  *int                     `mapstructure:"udp_answer_limit"`
	EnableTruncate  *bool                    `mapstructure:"enable_truncate"`
	RecursorTimeout *time.Duration           `mapstructure:"recursor_timeout"`
}

// Format is a config file's syntax.
type Format int

// Formats for ParseFile.
const (
	// FormatAuto picks by the name's extension (.hcl or .json) or, failing
	// that, by content: JSON when the first non-blank byte is '{'.
	FormatAuto Format = iota
	// FormatHCL is HashiCorp Configuration Language, version 1.
	FormatHCL
	// FormatJSON is JSON with the same keys.
	FormatJSON
)

// ParseFile parses one config file's contents, in Consul's dialect, HCL v1 or
// JSON. name is used in error messages and, with FormatAuto, to pick the
// syntax. Unknown keys and values of the wrong type are errors, as are
// service and check definitions that fail Validate; definitions are then
// Normalized. Settings whose checks depend on other settings (bootstrap and
// bootstrap_expect, ports, names) are checked by Load, after merging.
//
// Errors name the file, the line and the key as the file spells it:
// "/etc/meshd/a.hcl:12: ports.http: expected a number, got string". They
// match ErrInvalid, and ErrSyntax or ErrUnknownField where those apply.
// ParseFile has no side effects and never panics.
func ParseFile(name string, data []byte, format Format) (*File, error) {
	f, _, err := parseFile(name, data, format)
	return f, err
}

// fileSource is a parsed file's map from paths to lines, kept so that Load
// can name the file and line of a setting that fails a later check.
type fileSource struct {
	name string
	tree *tree
	dec  *decoder
}

// where names where a canonical path was set.
func (s *fileSource) where(canon string) origin {
	return s.at(s.dec.inputPath(canon))
}

// at names the file and line of a path in the file's own terms.
func (s *fileSource) at(path string) origin {
	if line := s.tree.lineOf(path); line > 0 {
		return origin{prefix: s.name + ":" + strconv.Itoa(line), key: path}
	}
	return origin{prefix: s.name, key: path}
}

func parseFile(name string, data []byte, format Format) (*File, *fileSource, error) {
	if format == FormatAuto {
		format = detectFormat(name, data)
	}
	var t *tree
	var err error
	if format == FormatJSON {
		t, err = parseJSON(data)
	} else {
		t, err = parseHCL(data)
	}
	if err != nil {
		var le *lineError
		if errors.As(err, &le) {
			if le.line > 0 {
				return nil, nil, fmt.Errorf("%s:%d: %w", name, le.line, le.err)
			}
			return nil, nil, fmt.Errorf("%s: %w", name, le.err)
		}
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	f := new(File)
	dec, err := decodeTracked(t.root, f, DecodeOptions{ErrorUnused: true}, true)
	src := &fileSource{name: name, tree: t, dec: dec}
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, nil, src.at(fe.Path).wrap(fe.Err)
		}
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := src.checkDefinitions(f); err != nil {
		return nil, nil, err
	}
	return f, src, nil
}

// checkDefinitions validates and normalizes the file's services and checks,
// dropping null list entries; errors carry the file, line and path.
func (s *fileSource) checkDefinitions(f *File) error {
	if f.Service != nil {
		if err := f.Service.Validate(); err != nil {
			return s.defError("service", err)
		}
		f.Service.Normalize()
	}
	for i, svc := range f.Services {
		if svc == nil {
			continue
		}
		if err := svc.Validate(); err != nil {
			return s.defError("services["+strconv.Itoa(i)+"]", err)
		}
		svc.Normalize()
	}
	if f.Check != nil {
		if err := f.Check.Validate(); err != nil {
			return s.defError("check", err)
		}
		f.Check.Normalize()
	}
	for i, c := range f.Checks {
		if c == nil {
			continue
		}
		if err := c.Validate(); err != nil {
			return s.defError("checks["+strconv.Itoa(i)+"]", err)
		}
		c.Normalize()
	}
	f.Services = dropNil(f.Services)
	f.Checks = dropNil(f.Checks)
	return nil
}

func dropNil[T any](list []*T) []*T {
	out := list[:0]
	for _, v := range list {
		if v != nil {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// defError places a Validate error (a path relative to the definition, in
// Go field names) at the definition's canonical path.
func (s *fileSource) defError(prefix string, err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return fmt.Errorf("%s: %s: %w", s.name, prefix, err)
	}
	canon := prefix
	switch {
	case fe.Path == "":
	case strings.HasPrefix(fe.Path, "["):
		canon += fe.Path
	default:
		canon += "." + fe.Path
	}
	return s.where(canon).wrap(fe.Err)
}

func detectFormat(name string, data []byte) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return FormatJSON
	case ".hcl":
		return FormatHCL
	}
	for _, b := range data {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return FormatJSON
		default:
			return FormatHCL
		}
	}
	return FormatHCL
}
