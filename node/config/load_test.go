package config

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func hostname(name string) func() (string, error) {
	return func() (string, error) { return name, nil }
}

// writeFiles writes name → content into dir and returns dir.
func writeFiles(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadArgs parses command-line arguments with AddFlags and loads.
func loadArgs(t *testing.T, args ...string) (*Runtime, []string, error) {
	t.Helper()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	opts := AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	opts.Hostname = hostname("host-1")
	return Load(*opts)
}

func TestLoadDefaults(t *testing.T) {
	r, warnings, err := Load(LoadOptions{
		Flags:    File{DataDir: ptr("/var/lib/meshd/")},
		Hostname: hostname("host-1"),
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	want := &Runtime{
		Datacenter:           "dc1",
		NodeName:             "host-1",
		DataDir:              "/var/lib/meshd",
		BindAddr:             netip.MustParseAddr("0.0.0.0"),
		ClientAddrs:          []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		HTTPPort:             8500,
		DNSPort:              8600,
		ServerPort:           8300,
		SerfLANPort:          8301,
		SerfWANPort:          8302,
		Domain:               "consul.",
		LogLevel:             "info",
		LeaveOnTerminate:     true,
		SkipLeaveOnInterrupt: false,
		CheckUpdateInterval:  5 * time.Minute,
		ReconnectTimeout:     72 * time.Hour,
		RaftMultiplier:       1,
		DNS: DNSConfig{
			AllowStale:      true,
			MaxStale:        87600 * time.Hour,
			NodeTTL:         5 * time.Second,
			ServiceTTL:      map[string]time.Duration{"*": 5 * time.Second},
			EnableTruncate:  true,
			RecursorTimeout: 2 * time.Second,
		},
		Cache:  CacheConfig{EntryTTL: 72 * time.Hour, MaxEntries: 10_000, StaleIfError: 72 * time.Hour},
		Limits: LimitsConfig{RPCRatePerClient: 5_000, RPCBurstPerClient: 20_000, MaxBlockingQueriesPerClient: 20_000},
		Autopilot: AutopilotConfig{CleanupDeadServers: true, LastContactThreshold: 200 * time.Millisecond, MaxTrailingLogs: 250,
			ServerStabilizationTime: 10 * time.Second},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	if got := r.HTTPAddrs(); !slices.Equal(got, []string{"127.0.0.1:8500"}) {
		t.Errorf("HTTPAddrs = %q", got)
	}
	if got := r.DNSAddrs(); !slices.Equal(got, []string{"127.0.0.1:8600"}) {
		t.Errorf("DNSAddrs = %q", got)
	}
}

func TestLoadDev(t *testing.T) {
	r, _, err := loadArgs(t, "-dev")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	if !r.DevMode || !r.InMemory || r.DataDir != "" {
		t.Errorf("DevMode %t InMemory %t DataDir %q, want in-memory dev mode", r.DevMode, r.InMemory, r.DataDir)
	}
	if !r.ServerMode || !r.Bootstrap || r.BootstrapExpect != 0 {
		t.Errorf("ServerMode %t Bootstrap %t BootstrapExpect %d, want a bootstrapping server", r.ServerMode, r.Bootstrap, r.BootstrapExpect)
	}
	if r.BindAddr != loopback || r.AdvertiseAddr != loopback || !slices.Equal(r.ClientAddrs, []netip.Addr{loopback}) {
		t.Errorf("bind %s advertise %s client %v, want 127.0.0.1", r.BindAddr, r.AdvertiseAddr, r.ClientAddrs)
	}
	if r.NodeName != "host-1" || r.Datacenter != "dc1" {
		t.Errorf("node %q dc %q", r.NodeName, r.Datacenter)
	}
	if r.HTTPPort != 8500 || r.DNSPort != 8600 || r.ServerPort != 8300 || r.SerfLANPort != 8301 || r.SerfWANPort != 8302 {
		t.Errorf("ports %d %d %d %d %d, want Consul's defaults", r.HTTPPort, r.DNSPort, r.ServerPort, r.SerfLANPort, r.SerfWANPort)
	}
	if r.LeaveOnTerminate || !r.SkipLeaveOnInterrupt {
		t.Errorf("a server must not leave on signals: LeaveOnTerminate %t SkipLeaveOnInterrupt %t", r.LeaveOnTerminate, r.SkipLeaveOnInterrupt)
	}

	// A data dir makes dev mode persistent.
	r, _, err = loadArgs(t, "-dev", "-data-dir", t.TempDir())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if r.InMemory || r.DataDir == "" {
		t.Errorf("InMemory %t DataDir %q with -data-dir", r.InMemory, r.DataDir)
	}
}

func TestLoadConfigDirOrderAndMerge(t *testing.T) {
	dir := writeFiles(t, t.TempDir(), map[string]string{
		// Lexical order: a before b; "10" sorts before "9".
		"10-base.hcl": `
data_dir = "/data"
datacenter = "first"
node_meta { rack = "r1"  zone = "z1" }
retry_join = ["10.0.0.1"]
services { name = "web" port = 80 }
dns_config { service_ttl { "web*" = "30s" } }
autopilot { cleanup_dead_servers = false  max_trailing_logs = 500 }
`,
		"9-override.json": `{
  "datacenter": "Second",
  "node_meta": {"zone": "z2"},
  "retry_join": ["10.0.0.2"],
  "services": [{"name": "db", "port": 5432}],
  "check": {"name": "mem", "ttl": "1m"},
  "autopilot": {"server_stabilization_time": "30s", "min_quorum": 3, "last_contact_threshold": "1s"}
}`,
		"notes.txt":       "not config",
		"sub/ignored.hcl": `datacenter = "never"`,
	})
	r, warnings, err := Load(LoadOptions{ConfigDirs: []string{dir}, Hostname: hostname("host-1")})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if r.Datacenter != "second" {
		t.Errorf("Datacenter = %q, want the later file's, lower-cased", r.Datacenter)
	}
	if want := map[string]string{"rack": "r1", "zone": "z2"}; !reflect.DeepEqual(r.NodeMeta, want) {
		t.Errorf("NodeMeta = %v, want %v", r.NodeMeta, want)
	}
	if want := []string{"10.0.0.1", "10.0.0.2"}; !slices.Equal(r.RetryJoin, want) {
		t.Errorf("RetryJoin = %q, want %q", r.RetryJoin, want)
	}
	var names []string
	for _, s := range r.Services {
		names = append(names, s.ID)
	}
	if want := []string{"web", "db"}; !slices.Equal(names, want) {
		t.Errorf("services %q, want %q", names, want)
	}
	if len(r.Checks) != 1 || r.Checks[0].ID != "mem" {
		t.Errorf("checks %s", dump(r.Checks))
	}
	if want := map[string]time.Duration{"*": 5 * time.Second, "web*": 30 * time.Second}; !reflect.DeepEqual(r.DNS.ServiceTTL, want) {
		t.Errorf("ServiceTTL = %v, want %v", r.DNS.ServiceTTL, want)
	}
	if want := (AutopilotConfig{LastContactThreshold: time.Second, MaxTrailingLogs: 500, ServerStabilizationTime: 30 * time.Second, MinQuorum: 3}); r.Autopilot != want {
		t.Errorf("Autopilot = %+v, want %+v (both files merged)", r.Autopilot, want)
	}
	wantFiles := []string{filepath.Join(dir, "10-base.hcl"), filepath.Join(dir, "9-override.json")}
	if !slices.Equal(r.ConfigFiles, wantFiles) {
		t.Errorf("ConfigFiles = %q, want %q", r.ConfigFiles, wantFiles)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "notes.txt") {
		t.Errorf("warnings = %q, want one about notes.txt", warnings)
	}
}

func TestLoadFlagsOverrideFiles(t *testing.T) {
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"a.hcl": `
data_dir = "/data"
node_name = "from-file"
ports { http = 8000  dns = 8053 }
retry_join = ["file-1"]
node_meta { a = "file"  b = "file" }
log_level = "warn"
`,
	})
	r, _, err := loadArgs(t,
		"-config-file", filepath.Join(dir, "a.hcl"),
		"-node", "from-flag",
		"-http-port", "9000",
		"-retry-join", "flag-1", "-retry-join", "flag-2",
		"-node-meta", "b:flag", "-node-meta", "c:x:y",
	)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if r.NodeName != "from-flag" || r.HTTPPort != 9000 {
		t.Errorf("node %q http %d: flags must win", r.NodeName, r.HTTPPort)
	}
	if r.DNSPort != 8053 || r.LogLevel != "warn" {
		t.Errorf("dns %d log %q: settings no flag gave must keep the file's values", r.DNSPort, r.LogLevel)
	}
	if want := []string{"file-1", "flag-1", "flag-2"}; !slices.Equal(r.RetryJoin, want) {
		t.Errorf("RetryJoin = %q, want %q", r.RetryJoin, want)
	}
	if want := map[string]string{"a": "file", "b": "flag", "c": "x:y"}; !reflect.DeepEqual(r.NodeMeta, want) {
		t.Errorf("NodeMeta = %v, want %v", r.NodeMeta, want)
	}
}

// TestLoadCommandLineOrder: -config-file and -config-dir load in the order
// given, so whichever comes later wins.
func TestLoadCommandLineOrder(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"dir/a.hcl":     `datacenter = "from-dir"`,
		"override.json": `{"datacenter": "from-file"}`,
		"base.hcl":      `data_dir = "/data"`,
	})
	dir, file, base := filepath.Join(root, "dir"), filepath.Join(root, "override.json"), filepath.Join(root, "base.hcl")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-config-file", base, "-config-dir", dir, "-config-file", file}, "from-file"},
		{[]string{"-config-file", base, "-config-file", file, "-config-dir", dir}, "from-dir"},
	} {
		r, _, err := loadArgs(t, tt.args...)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if r.Datacenter != tt.want {
			t.Errorf("%q: datacenter %q, want %q", tt.args, r.Datacenter, tt.want)
		}
	}
}

func TestLoadLeaveDefaults(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		wantLeave     bool
		wantSkipLeave bool
	}{
		{name: "client leaves", args: nil, wantLeave: true, wantSkipLeave: false},
		{name: "server stays", args: []string{"-server"}, wantLeave: false, wantSkipLeave: true},
		{name: "explicit settings win", args: []string{"-server", "-config-file", "leave.hcl"}, wantLeave: true, wantSkipLeave: false},
	}
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"leave.hcl": "leave_on_terminate = true\nskip_leave_on_interrupt = false",
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-data-dir", "/data"}
			for _, a := range tt.args {
				if strings.HasSuffix(a, ".hcl") {
					a = filepath.Join(dir, a)
				}
				args = append(args, a)
			}
			r, _, err := loadArgs(t, args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if r.LeaveOnTerminate != tt.wantLeave || r.SkipLeaveOnInterrupt != tt.wantSkipLeave {
				t.Errorf("LeaveOnTerminate %t SkipLeaveOnInterrupt %t, want %t %t",
					r.LeaveOnTerminate, r.SkipLeaveOnInterrupt, tt.wantLeave, tt.wantSkipLeave)
			}
		})
	}
}

func TestLoadDerivedValues(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		wantAdvertise string // "" for the zero Addr
		wantDomain    string
		wantRecursors []string
		wantLevel     string
	}{
		{name: "unspecified bind leaves advertise to the node", args: nil, wantDomain: "consul.", wantLevel: "info"},
		{name: "specific bind is advertised", args: []string{"-bind", "10.0.0.5"}, wantAdvertise: "10.0.0.5", wantDomain: "consul.", wantLevel: "info"},
		{name: "advertise wins", args: []string{"-bind", "10.0.0.5", "-advertise", "192.0.2.1"}, wantAdvertise: "192.0.2.1", wantDomain: "consul.", wantLevel: "info"},
		{name: "domain gets its dot", args: []string{"-domain", "Mesh.Example"}, wantDomain: "mesh.example.", wantLevel: "info"},
		{name: "log level aliases", args: []string{"-log-level", "WARNING"}, wantDomain: "consul.", wantLevel: "warn"},
		{name: "recursors get port 53", args: []string{"-config-file", "rec.hcl"}, wantDomain: "consul.", wantLevel: "info",
			wantRecursors: []string{"8.8.8.8:53", "[2001:db8::1]:53", "1.1.1.1:5353"}},
	}
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"rec.hcl": `recursors = ["8.8.8.8", "2001:db8::1", "1.1.1.1:5353"]`,
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-data-dir", "/data"}
			for _, a := range tt.args {
				if strings.HasSuffix(a, ".hcl") {
					a = filepath.Join(dir, a)
				}
				args = append(args, a)
			}
			r, _, err := loadArgs(t, args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var adv string
			if r.AdvertiseAddr.IsValid() {
				adv = r.AdvertiseAddr.String()
			}
			if adv != tt.wantAdvertise {
				t.Errorf("AdvertiseAddr %q, want %q", adv, tt.wantAdvertise)
			}
			if r.Domain != tt.wantDomain {
				t.Errorf("Domain %q, want %q", r.Domain, tt.wantDomain)
			}
			if !slices.Equal(r.DNS.Recursors, tt.wantRecursors) {
				t.Errorf("Recursors %q, want %q", r.DNS.Recursors, tt.wantRecursors)
			}
			if r.LogLevel != tt.wantLevel {
				t.Errorf("LogLevel %q, want %q", r.LogLevel, tt.wantLevel)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string // written to a temp dir, loaded as -config-file in name order
		args     []string
		hostname string
		want     string // the error, with "DIR" for the temp dir
	}{{
		name:  "bootstrap with bootstrap_expect",
		files: map[string]string{"a.hcl": "server = true\nbootstrap = true\nbootstrap_expect = 3\n"},
		want:  "DIR/a.hcl:3: bootstrap_expect: cannot be used with bootstrap (set at DIR/a.hcl:2)",
	}, {
		name:  "bootstrap_expect in one file, bootstrap in another",
		files: map[string]string{"a.hcl": "server = true\nbootstrap_expect = 3", "b.json": "{\n\n\"bootstrap\": true}"},
		want:  "DIR/a.hcl:2: bootstrap_expect: cannot be used with bootstrap (set at DIR/b.json:3)",
	}, {
		name: "bootstrap_expect flag against -dev",
		args: []string{"-dev", "-bootstrap-expect", "3"},
		want: "-bootstrap-expect: cannot be used with bootstrap (set at -dev)",
	}, {
		name:  "bootstrap_expect without server",
		files: map[string]string{"a.hcl": "\nbootstrap_expect = 3"},
		want:  "DIR/a.hcl:2: bootstrap_expect: requires server mode (server = true, or -server)",
	}, {
		name: "negative bootstrap_expect",
		args: []string{"-server", "-bootstrap-expect", "-1"},
		want: "-bootstrap-expect: must not be negative",
	}, {
		name:  "retry_join_wan on a client",
		files: map[string]string{"a.hcl": "\nretry_join_wan = [\"10.1.0.1\"]"},
		want:  "DIR/a.hcl:2: retry_join_wan: only servers join the WAN pool; set server = true or join a server of this datacenter instead",
	}, {
		name: "join-wan with the WAN port disabled",
		args: []string{"-server", "-serf-wan-port", "-1", "-join-wan", "10.1.0.1"},
		want: "-serf-wan-port: is disabled, but retry_join_wan or start_join_wan asks to join the WAN pool",
	}, {
		name: "advertise-wan not an IP",
		args: []string{"-advertise-wan", "dc2.example"},
		want: `-advertise-wan: "dc2.example" is not an IP address`,
	}, {
		name: "bootstrap without server",
		args: []string{"-bootstrap"},
		want: "-bootstrap: requires server mode (server = true, or -server)",
	}, {
		name:  "port out of range in a file",
		files: map[string]string{"a.hcl": "server = true\nports {\n  http = 70000\n}"},
		want:  "DIR/a.hcl:3: ports.http: must be between 0 and 65535 (or -1 to disable), got 70000",
	}, {
		name:  "port out of range in JSON",
		files: map[string]string{"a.json": "{\"ports\": {\n\"serf_wan\": -2}}"},
		want:  "DIR/a.json:2: ports.serf_wan: must be between 0 and 65535 (or -1 to disable), got -2",
	}, {
		name: "port out of range from a flag",
		args: []string{"-dns-port", "65536"},
		want: "-dns-port: must be between 0 and 65535 (or -1 to disable), got 65536",
	}, {
		name: "server port disabled on a server",
		args: []string{"-server", "-server-port", "-1"},
		want: "-server-port: cannot be disabled on a server",
	}, {
		name:  "datacenter",
		files: map[string]string{"a.hcl": `datacenter = "dc_1"`},
		want:  `DIR/a.hcl:1: datacenter: "dc_1" is not a valid DNS label (letters, digits and dashes)`,
	}, {
		name: "node name",
		args: []string{"-node", "web_01"},
		want: `-node: "web_01" is not a valid node name (letters, digits, dashes and dots)`,
	}, {
		name:     "hostname not a node name",
		hostname: "My_Laptop",
		want:     `default: node_name: the hostname "My_Laptop" is not a valid node name (letters, digits, dashes and dots); set node_name or -node`,
	}, {
		name:  "node id",
		files: map[string]string{"a.json": `{"node_id": "1234"}`},
		want:  `DIR/a.json:1: node_id: "1234" is not a UUID`,
	}, {
		name: "data dir required",
		args: []string{"-data-dir", ""},
		want: "data_dir: required (set data_dir or -data-dir, or use -dev for an in-memory agent)",
	}, {
		name: "log level",
		args: []string{"-log-level", "verbose"},
		want: `-log-level: must be trace, debug, info, warn or error, got "verbose"`,
	}, {
		name:  "bind address",
		files: map[string]string{"a.hcl": `bind_addr = "{{ GetPrivateIP }}"`},
		want:  `DIR/a.hcl:1: bind_addr: "{{ GetPrivateIP }}" is not an IP address`,
	}, {
		name: "client address list",
		args: []string{"-client", "127.0.0.1 localhost"},
		want: `-client: "localhost" is not an IP address`,
	}, {
		name: "advertise unspecified",
		args: []string{"-advertise", "0.0.0.0"},
		want: "-advertise: 0.0.0.0 cannot be reached; give a specific address",
	}, {
		name:  "domain",
		files: map[string]string{"a.hcl": `domain = "my..domain"`},
		want:  `DIR/a.hcl:1: domain: "my..domain" is not a valid DNS domain`,
	}, {
		name:  "recursor",
		files: map[string]string{"a.hcl": "recursors = [\n  \"8.8.8.8\",\n  \"dns.google\",\n]"},
		want:  `DIR/a.hcl:3: recursors[1]: "dns.google" is not an IP address or ip:port`,
	}, {
		name:  "alt domain",
		files: map[string]string{"a.hcl": "domain = \"consul\"\nalt_domain = \"Consul.\""},
		want:  `DIR/a.hcl:2: alt_domain: "Consul." is the same as domain`,
	}, {
		name: "alt domain from a flag",
		args: []string{"-alt-domain", "bad..name"},
		want: `-alt-domain: "bad..name" is not a valid DNS domain`,
	}, {
		name: "recursor from a flag",
		args: []string{"-recursor", "8.8.8.8", "-recursor", "nope"},
		want: `-recursor: "nope" is not an IP address or ip:port`,
	}, {
		name:  "recursor timeout",
		files: map[string]string{"a.hcl": "dns_config {\n  recursor_timeout = \"0s\"\n}"},
		want:  `DIR/a.hcl:2: dns_config.recursor_timeout: must be positive`,
	}, {
		name:  "node meta reserved",
		files: map[string]string{"a.hcl": "node_meta {\n  ok = \"1\"\n  consul-version = \"2\"\n}"},
		want:  `DIR/a.hcl:3: node_meta.consul-version: keys starting with "consul-" are reserved`,
	}, {
		name: "node meta from a flag",
		args: []string{"-node-meta", "bad key:1"},
		want: `-node-meta: key may contain only letters, digits, '_' and '-'`,
	}, {
		name:  "service ttl wildcard",
		files: map[string]string{"a.hcl": "dns_config {\n  service_ttl {\n    \"*web\" = \"1s\"\n  }\n}"},
		want:  `DIR/a.hcl:3: dns_config.service_ttl.*web: "*web": a wildcard '*' may only end a name`,
	}, {
		name:  "negative dns duration",
		files: map[string]string{"a.hcl": "dns_config {\n  node_ttl = \"-1s\"\n}"},
		want:  `DIR/a.hcl:2: dns_config.node_ttl: must not be negative`,
	}, {
		name:  "cache entry ttl",
		files: map[string]string{"a.hcl": "cache {\n  entry_ttl = \"10ms\"\n}"},
		want:  `DIR/a.hcl:2: cache.entry_ttl: must be at least 1s`,
	}, {
		name:  "cache max entries",
		files: map[string]string{"a.json": "{\"cache\": {\n\"max_entries\": 0}}"},
		want:  `DIR/a.json:2: cache.max_entries: must be at least 1`,
	}, {
		name:  "cache stale if error",
		files: map[string]string{"a.hcl": "cache {\n  stale_if_error = \"-1s\"\n}"},
		want:  `DIR/a.hcl:2: cache.stale_if_error: must not be negative`,
	}, {
		name:  "rate without burst",
		files: map[string]string{"a.hcl": "limits {\n  rpc_rate_per_client = 10\n  rpc_burst_per_client = 0\n}"},
		want:  `DIR/a.hcl:3: limits.rpc_burst_per_client: must be at least 1 with a rate limit`,
	}, {
		name:  "negative blocking limit",
		files: map[string]string{"a.hcl": "limits {\n  max_blocking_queries_per_client = -1\n}"},
		want:  `DIR/a.hcl:2: limits.max_blocking_queries_per_client: must not be negative`,
	}, {
		name:  "autopilot last contact threshold",
		files: map[string]string{"a.hcl": "autopilot {\n  last_contact_threshold = \"0s\"\n}"},
		want:  `DIR/a.hcl:2: autopilot.last_contact_threshold: must be positive and at most 24h0m0s`,
	}, {
		name:  "autopilot stabilization time",
		files: map[string]string{"a.json": "{\"autopilot\": {\n\"server_stabilization_time\": \"-1s\"}}"},
		want:  `DIR/a.json:2: autopilot.server_stabilization_time: must be between 0 and 24h0m0s`,
	}, {
		// Bounds a leader can store: a file over them would never be.
		name:  "autopilot trailing logs",
		files: map[string]string{"a.hcl": "autopilot {\n  max_trailing_logs = 2000000000000\n}"},
		want:  `DIR/a.hcl:2: autopilot.max_trailing_logs: must be between 0 and 1099511627776`,
	}, {
		name:  "autopilot unknown key",
		files: map[string]string{"a.hcl": "autopilot {\n  cleanup_dead = true\n}"},
		want:  `DIR/a.hcl:2: autopilot.cleanup_dead: unknown field`,
	}, {
		name:  "reconnect timeout",
		files: map[string]string{"a.hcl": `reconnect_timeout = "0s"`},
		want:  `DIR/a.hcl:1: reconnect_timeout: must be positive`,
	}, {
		name: "duplicate service across files",
		files: map[string]string{
			"a.hcl":  "services { name = \"web\" }",
			"b.json": "{\n\"service\": {\"name\": \"web\", \"port\": 81}}",
		},
		want: `DIR/b.json:2: service: duplicate service ID "web" (also at DIR/a.hcl:1)`,
	}, {
		name: "duplicate check ID",
		files: map[string]string{
			"a.hcl": "check {\n  name = \"mem\"\n  ttl = \"1s\"\n}\nchecks = [\n  { id = \"mem\", name = \"Memory\", ttl = \"1s\" }\n]",
		},
		want: `DIR/a.hcl:6: checks[0]: duplicate check ID "mem" (also at DIR/a.hcl:1)`,
	}, {
		name: "script check without enabling scripts",
		files: map[string]string{
			"a.hcl": "\nservice {\n  name = \"web\"\n  check {\n    args = [\"/bin/true\"]\n    interval = \"10s\"\n  }\n}",
		},
		want: `DIR/a.hcl:2: service: check "service:web" runs a script, but script checks are disabled; set enable_local_script_checks`,
	}, {
		name: "missing config file",
		args: []string{"-config-file", "DIR/nope.hcl"},
		want: "config file: stat DIR/nope.hcl: no such file or directory",
	}, {
		name:  "config dir is a file",
		files: map[string]string{"a.hcl": ""},
		args:  []string{"-config-dirs-only", "DIR/a.hcl"},
		want:  "config dir DIR/a.hcl: not a directory",
	}, {
		name:  "file errors carry through Load",
		files: map[string]string{"a.hcl": "server = true\nports { htp = 1 }"},
		want:  "DIR/a.hcl:2: ports.htp: unknown field",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, t.TempDir(), tt.files)
			fs := flag.NewFlagSet("agent", flag.ContinueOnError)
			opts := AddFlags(fs)
			var args []string
			for i := 0; i < len(tt.args); i++ {
				if tt.args[i] == "-config-dirs-only" {
					opts.ConfigDirs = append(opts.ConfigDirs, strings.ReplaceAll(tt.args[i+1], "DIR", dir))
					i++
					continue
				}
				args = append(args, strings.ReplaceAll(tt.args[i], "DIR", dir))
			}
			if tt.args == nil || !slices.Contains(tt.args, "-config-dirs-only") {
				for _, name := range sortedMapKeys(tt.files) {
					args = append(args, "-config-file", filepath.Join(dir, name))
				}
			}
			if !slices.Contains(args, "-data-dir") && !slices.Contains(args, "-dev") {
				args = append([]string{"-data-dir", "/data"}, args...)
			}
			if err := fs.Parse(args); err != nil {
				t.Fatalf("parse %q: %v", args, err)
			}
			opts.Hostname = hostname("host-1")
			if tt.hostname != "" {
				opts.Hostname = hostname(tt.hostname)
			}
			r, _, err := Load(*opts)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", r)
			}
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			if err.Error() != want {
				t.Errorf("error\n got %q\nwant %q", err, want)
			}
		})
	}
}

func TestLoadHostnameError(t *testing.T) {
	_, _, err := Load(LoadOptions{
		Dev:      true,
		Hostname: func() (string, error) { return "", errors.New("no uts namespace") },
	})
	want := "node_name: cannot default to the hostname (no uts namespace); set node_name or -node"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not match ErrInvalid")
	}
}

func TestLoadWarnings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // substring of the only warning
	}{
		{name: "bootstrap_expect 1", args: []string{"-server", "-bootstrap-expect", "1"}, want: "bootstrap_expect = 1"},
		{name: "even bootstrap_expect", args: []string{"-server", "-bootstrap-expect", "4"}, want: "even number"},
		{name: "bootstrap outside dev", args: []string{"-server", "-bootstrap"}, want: "bootstrap mode"},
		{name: "script checks", args: []string{"-enable-script-checks"}, want: "enable_local_script_checks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warnings, err := loadArgs(t, append([]string{"-data-dir", "/data"}, tt.args...)...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], tt.want) {
				t.Errorf("warnings %q, want one containing %q", warnings, tt.want)
			}
		})
	}
}

func TestTTLForService(t *testing.T) {
	d := DNSConfig{ServiceTTL: map[string]time.Duration{
		"*":      5 * time.Second,
		"web*":   10 * time.Second,
		"web-v2": 20 * time.Second,
		"web-*":  15 * time.Second,
	}}
	for name, want := range map[string]time.Duration{
		"db":     5 * time.Second,
		"web":    10 * time.Second,
		"webapp": 10 * time.Second,
		"web-v1": 15 * time.Second,
		"WEB-V2": 20 * time.Second,
	} {
		if got := d.TTLForService(name); got != want {
			t.Errorf("TTLForService(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestSlogLevel(t *testing.T) {
	for lvl, want := range map[string]string{"trace": "DEBUG-4", "debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"} {
		r := &Runtime{LogLevel: lvl}
		if got := r.SlogLevel().String(); got != want {
			t.Errorf("%s: %s, want %s", lvl, got, want)
		}
	}
}

func TestDisabledListeners(t *testing.T) {
	r, _, err := loadArgs(t, "-data-dir", "/data", "-http-port", "-1", "-client", "127.0.0.1 ::1")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.HTTPAddrs(); got != nil {
		t.Errorf("HTTPAddrs = %q with the port disabled", got)
	}
	if got, want := r.DNSAddrs(), []string{"127.0.0.1:8600", "[::1]:8600"}; !slices.Equal(got, want) {
		t.Errorf("DNSAddrs = %q, want %q", got, want)
	}
}

func TestLoadWAN(t *testing.T) {
	r, _, err := loadArgs(t, "-server", "-data-dir", t.TempDir(), "-bind", "10.0.0.5", "-retry-join-wan", "198.51.100.1", "-join-wan", "198.51.100.2:8302")
	if err != nil {
		t.Fatal(err)
	}
	if r.AdvertiseAddrWAN.String() != "10.0.0.5" {
		t.Errorf("AdvertiseAddrWAN = %v, want the advertise address", r.AdvertiseAddrWAN)
	}
	if !slices.Equal(r.RetryJoinWAN, []string{"198.51.100.1"}) || !slices.Equal(r.StartJoinWAN, []string{"198.51.100.2:8302"}) {
		t.Errorf("RetryJoinWAN %q StartJoinWAN %q", r.RetryJoinWAN, r.StartJoinWAN)
	}
	r, _, err = loadArgs(t, "-server", "-data-dir", t.TempDir(), "-bind", "10.0.0.5", "-advertise-wan", "203.0.113.9")
	if err != nil {
		t.Fatal(err)
	}
	if r.AdvertiseAddrWAN.String() != "203.0.113.9" || r.AdvertiseAddr.String() != "10.0.0.5" {
		t.Errorf("advertise %v, advertise wan %v", r.AdvertiseAddr, r.AdvertiseAddrWAN)
	}
}
