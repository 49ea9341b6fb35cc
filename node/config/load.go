package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// LoadOptions says where Load finds configuration. The zero value loads
// defaults only (which fails: data_dir is required outside dev mode).
type LoadOptions struct {
	// Dev applies the -dev preset over the defaults: a single server that
	// bootstraps itself, keeps its state in memory (unless a data_dir is
	// given) and listens on 127.0.0.1 only.
	Dev bool
	// ConfigFiles are loaded in order. As in Consul, an entry that is a
	// directory loads every *.hcl and *.json file in it, in lexical order;
	// AddFlags appends both -config-file and -config-dir here, so files load
	// in command-line order.
	ConfigFiles []string
	// ConfigDirs are directories loaded after ConfigFiles, each like a
	// directory entry of ConfigFiles.
	ConfigDirs []string
	// Flags is the command line's overlay, applied last. Only settings the
	// command line gave are set.
	Flags File
	// Hostname supplies the default node name; nil means os.Hostname.
	Hostname func() (string, error)

	// flagNames maps canonical setting paths to the flag that set them, so
	// errors about flag values name the flag. Filled by AddFlags.
	flagNames map[string]string
}

// Load builds the agent's configuration. Sources are merged in order:
// defaults, the -dev preset (if opts.Dev), each config file (opts.ConfigFiles
// then opts.ConfigDirs, directories expanded in lexical order), then
// opts.Flags. A scalar set by a later source replaces the earlier value;
// lists (services, checks, retry_join, start_join, recursors) append; maps
// (node_meta, dns_config.service_ttl) merge key by key, later keys winning.
//
// The merged result is validated as a whole. Errors name where the offending
// value came from: "a.hcl:3: bootstrap_expect: ...", or "-http-port: ..." for
// a flag. Warnings are things that work but are probably unintended (a file
// with another extension in a config directory, bootstrap_expect = 1, script
// checks enabled for the HTTP API).
//
// Load reads the files and the hostname and nothing else: no directories are
// created, no addresses resolved.
func Load(opts LoadOptions) (*Runtime, []string, error) {
	b := &builder{origins: make(map[string]origin)}

	hostnameFn := opts.Hostname
	if hostnameFn == nil {
		hostnameFn = os.Hostname
	}
	hostname, hostErr := hostnameFn()
	b.add(defaultFile(hostname, hostErr), func(canon string) origin {
		return origin{prefix: "default", key: canon}
	})
	if opts.Dev {
		b.add(devFile(), func(canon string) origin {
			return origin{prefix: "-dev", key: canon}
		})
	}

	paths, err := b.expandPaths(opts.ConfigFiles, opts.ConfigDirs)
	if err != nil {
		return nil, b.warnings, err
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, b.warnings, fmt.Errorf("read config: %w", err)
		}
		f, src, err := parseFile(path, data, FormatAuto)
		if err != nil {
			return nil, b.warnings, err
		}
		b.add(f, src.where)
	}

	b.add(&opts.Flags, func(canon string) origin {
		return flagOrigin(opts.flagNames, canon)
	})

	r, err := b.build(opts.Dev, hostErr)
	if err != nil {
		return nil, b.warnings, err
	}
	r.ConfigFiles = paths
	return r, b.warnings, nil
}

// flagOrigin names the flag that set a path, or the path itself when the
// overlay was filled by other means than AddFlags.
func flagOrigin(names map[string]string, canon string) origin {
	for p := canon; p != ""; p, _ = splitLastComponent(p) {
		if name, ok := names[p]; ok {
			return origin{key: name}
		}
	}
	return origin{prefix: "flags", key: canon}
}

// expandPaths lists the files to load, in order.
func (b *builder) expandPaths(files, dirs []string) ([]string, error) {
	var out []string
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		listed, err := b.dirFiles(p)
		if err != nil {
			return nil, err
		}
		out = append(out, listed...)
	}
	for _, p := range dirs {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("config dir: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("config dir %s: not a directory", p)
		}
		listed, err := b.dirFiles(p)
		if err != nil {
			return nil, err
		}
		out = append(out, listed...)
	}
	return out, nil
}

// dirFiles lists the *.hcl and *.json files of a directory in lexical order
// (os.ReadDir sorts by name), following symlinks to files. Other files are
// skipped with a warning, subdirectories silently.
func (b *builder) dirFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("config dir: %w", err)
	}
	var out []string
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			fi, err := os.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("config dir: %w", err)
			}
			isDir = fi.IsDir()
		}
		if isDir {
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".hcl", ".json":
			out = append(out, path)
		default:
			b.warn("skipping %s: config files must end in .hcl or .json", path)
		}
	}
	return out, nil
}

// origin is where a setting's value came from, for error messages: a prefix
// ("a.hcl:3", "-dev", "default"; empty for a flag) and the key as that source
// spells it ("ports.http", "-http-port").
type origin struct {
	prefix string
	key    string
}

// wrap places err at the origin: "a.hcl:3: ports.http: <err>". The result
// is, or wraps, a *FieldError.
func (o origin) wrap(err error) error {
	fe := &FieldError{Path: o.key, Err: err}
	if o.prefix == "" {
		return fe
	}
	return fmt.Errorf("%s: %w", o.prefix, fe)
}

func (o origin) errorf(format string, args ...any) error {
	return o.wrap(fmt.Errorf(format, args...))
}

// String is the origin for use inside another message: "a.hcl:3" or
// "-bootstrap".
func (o origin) String() string {
	if o.prefix == "" {
		return o.key
	}
	return o.prefix
}

// builder merges Files in order, remembering where each value came from.
type builder struct {
	merged   File
	origins  map[string]origin // by canonical path
	warnings []string
}

func (b *builder) warn(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

// origin returns where a canonical path's value came from.
func (b *builder) origin(canon string) origin {
	if o, ok := b.origins[canon]; ok {
		return o
	}
	return origin{key: canon}
}

// add merges src over what was merged so far. A single service or check
// block joins the lists, ahead of the source's own list entries.
func (b *builder) add(src *File, where func(canon string) origin) {
	f := *src
	if f.Service != nil {
		b.appendDef(reflect.ValueOf(&b.merged.Services).Elem(), "services", reflect.ValueOf(f.Service), where("service"))
		f.Service = nil
	}
	if f.Check != nil {
		b.appendDef(reflect.ValueOf(&b.merged.Checks).Elem(), "checks", reflect.ValueOf(f.Check), where("check"))
		f.Check = nil
	}
	b.merge(reflect.ValueOf(&b.merged).Elem(), reflect.ValueOf(f), "", where)
}

func (b *builder) appendDef(list reflect.Value, canon string, def reflect.Value, o origin) {
	b.origins[canon+"["+strconv.Itoa(list.Len())+"]"] = o
	list.Set(reflect.Append(list, def))
}

// merge applies src over dst: set pointers replace, slices append, maps
// merge by key, structs merge field by field. canon is the canonical path
// (as the decoder names it) for origins.
func (b *builder) merge(dst, src reflect.Value, canon string, where func(string) origin) {
	switch src.Kind() {
	case reflect.Struct:
		t := src.Type()
		for i := range t.NumField() {
			name := t.Field(i).Name
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ","); tag != "" {
				name = tag
			}
			b.merge(dst.Field(i), src.Field(i), joinPath(canon, name), where)
		}
	case reflect.Pointer:
		if !src.IsNil() {
			dst.Set(src)
			b.origins[canon] = where(canon)
		}
	case reflect.Slice:
		if src.Len() == 0 {
			return
		}
		base := dst.Len()
		for i := range src.Len() {
			b.origins[canon+"["+strconv.Itoa(base+i)+"]"] = where(canon + "[" + strconv.Itoa(i) + "]")
		}
		b.origins[canon] = where(canon)
		merged := reflect.MakeSlice(dst.Type(), 0, base+src.Len())
		dst.Set(reflect.AppendSlice(reflect.AppendSlice(merged, dst), src))
	case reflect.Map:
		if src.Len() == 0 {
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.MakeMap(dst.Type()))
		}
		iter := src.MapRange()
		for iter.Next() {
			dst.SetMapIndex(iter.Key(), iter.Value())
			k := canon + "[" + iter.Key().String() + "]"
			b.origins[k] = where(k)
		}
	}
}

// Defaults, as Consul's where DESIGN.md does not say otherwise.
const (
	DefaultDatacenter          = "dc1"
	DefaultDomain              = "consul."
	DefaultBindAddr            = "0.0.0.0"
	DefaultClientAddr          = "127.0.0.1"
	DefaultHTTPPort            = 8500
	DefaultDNSPort             = 8600
	DefaultServerPort          = 8300
	DefaultSerfLANPort         = 8301
	DefaultSerfWANPort         = 8302
	DefaultLogLevel            = "info"
	DefaultCheckUpdateInterval = 5 * time.Minute
	DefaultReconnectTimeout    = 72 * time.Hour
	DefaultRaftMultiplier      = 1
	DefaultDNSMaxStale         = 87600 * time.Hour
	DefaultDNSTTL              = 5 * time.Second
	DefaultRecursorTimeout     = 2 * time.Second
	// The agent cache keeps what nobody reads for 3 days, as Consul's.
	DefaultCacheEntryTTL     = 72 * time.Hour
	DefaultCacheMaxEntries   = 10_000
	DefaultCacheStaleIfError = 72 * time.Hour
	// Per-client limits on a server: generous enough for an agent that
	// watches DefaultCacheMaxEntries services and renews them all at once.
	DefaultRPCRatePerClient            = 5_000
	DefaultRPCBurstPerClient           = 20_000
	DefaultMaxBlockingQueriesPerClient = 20_000
	// Autopilot, as Consul's defaults.
	DefaultLastContactThreshold    = 200 * time.Millisecond
	DefaultMaxTrailingLogs         = 250
	DefaultServerStabilizationTime = 10 * time.Second
)

func ptr[T any](v T) *T { return &v }

// defaultFile is the first source. The hostname is the default node name;
// when it could not be read the node name stays unset and build says why.
func defaultFile(hostname string, hostErr error) *File {
	f := &File{
		Datacenter:              ptr(DefaultDatacenter),
		Server:                  ptr(false),
		Bootstrap:               ptr(false),
		BootstrapExpect:         ptr(0),
		BindAddr:                ptr(DefaultBindAddr),
		ClientAddr:              ptr(DefaultClientAddr),
		Domain:                  ptr(DefaultDomain),
		LogLevel:                ptr(DefaultLogLevel),
		EnableScriptChecks:      ptr(false),
		EnableLocalScriptChecks: ptr(false),
		EnableDebug:             ptr(false),
		CheckUpdateInterval:     ptr(DefaultCheckUpdateInterval),
		ReconnectTimeout:        ptr(DefaultReconnectTimeout),
		Performance:             FilePerformance{RaftMultiplier: ptr(DefaultRaftMultiplier)},
		Cache: FileCache{
			EntryTTL:     ptr(DefaultCacheEntryTTL),
			MaxEntries:   ptr(DefaultCacheMaxEntries),
			StaleIfError: ptr(DefaultCacheStaleIfError),
		},
		Autopilot: FileAutopilot{
			CleanupDeadServers:      ptr(true),
			LastContactThreshold:    ptr(DefaultLastContactThreshold),
			MaxTrailingLogs:         ptr(DefaultMaxTrailingLogs),
			ServerStabilizationTime: ptr(DefaultServerStabilizationTime),
			MinQuorum:               ptr(0),
		},
		Limits: FileLimits{
			RPCRatePerClient:            ptr(DefaultRPCRatePerClient),
			RPCBurstPerClient:           ptr(DefaultRPCBurstPerClient),
			MaxBlockingQueriesPerClient: ptr(DefaultMaxBlockingQueriesPerClient),
		},
		Ports: FilePorts{
			HTTP:    ptr(DefaultHTTPPort),
			DNS:     ptr(DefaultDNSPort),
			Server:  ptr(DefaultServerPort),
			SerfLAN: ptr(DefaultSerfLANPort),
			SerfWAN: ptr(DefaultSerfWANPort),
		},
		DNS: FileDNS{
			AllowStale:      ptr(true),
			MaxStale:        ptr(DefaultDNSMaxStale),
			RecursorTimeout: ptr(DefaultRecursorTimeout),
			NodeTTL:         ptr(DefaultDNSTTL),
			ServiceTTL:      map[string]time.Duration{"*": DefaultDNSTTL},
			// DESIGN.md: UDP answers carry as many records as fit and set
			// TC (Consul's default is 3 records, no TC).
			OnlyPassing:    ptr(false),
			ARecordLimit:   ptr(0),
			UDPAnswerLimit: ptr(0),
			EnableTruncate: ptr(true),
		},
	}
	if hostErr == nil && hostname != "" {
		f.NodeName = ptr(hostname)
	}
	return f
}

// devFile is the -dev preset: one server that elects itself, in memory, on
// loopback, with the default ports.
func devFile() *File {
	return &File{
		Server:     ptr(true),
		Bootstrap:  ptr(true),
		BindAddr:   ptr("127.0.0.1"),
		ClientAddr: ptr("127.0.0.1"),
	}
}
