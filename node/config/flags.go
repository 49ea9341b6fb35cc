package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// AddFlags registers the agent's command-line flags on fs, with Consul's
// names, and returns the LoadOptions that fs.Parse fills in. Each flag sets
// its setting in the returned Flags overlay only when given, so a flag
// overrides the files only when it is on the command line. -config-file and
// -config-dir (both repeatable) append to ConfigFiles in command-line order
// (a directory entry loads the directory, as in Consul). -retry-join, -join
// and -node-meta key:value are repeatable and append. Errors from Load about
// a value a flag set name the flag ("-http-port: ...").
//
// Call AddFlags once per FlagSet; the caller may set Hostname on the result
// before calling Load.
func AddFlags(fs *flag.FlagSet) *LoadOptions {
	o := &LoadOptions{flagNames: make(map[string]string)}
	f := &o.Flags

	fs.BoolVar(&o.Dev, "dev", false, "Start a single in-memory server on 127.0.0.1 for trying meshd out.")
	fs.Var(pathsValue{&o.ConfigFiles}, "config-file", "A config file (HCL or JSON) to load. Repeatable.")
	fs.Var(pathsValue{&o.ConfigFiles}, "config-dir", "A directory whose *.hcl and *.json files to load, in lexical order. Repeatable.")

	boolFlag(fs, o, &f.Server, "server", "server", "Run as a server: a member of the datacenter's Raft group.")
	boolFlag(fs, o, &f.Bootstrap, "bootstrap", "bootstrap", "Let this server elect itself leader without peers.")
	intFlag(fs, o, &f.BootstrapExpect, "bootstrap-expect", "bootstrap_expect", "Number of servers to wait for before bootstrapping the cluster.")
	stringFlag(fs, o, &f.DataDir, "data-dir", "data_dir", "Directory for the agent's state.")
	stringFlag(fs, o, &f.NodeName, "node", "node_name", "Name of this node; defaults to the hostname.")
	stringFlag(fs, o, &f.NodeID, "node-id", "node_id", "UUID of this node; generated and kept in the data dir if unset.")
	stringFlag(fs, o, &f.Datacenter, "datacenter", "datacenter", "Datacenter of this agent (default \"dc1\").")
	stringFlag(fs, o, &f.BindAddr, "bind", "bind_addr", "Address for gossip and server RPC (default \"0.0.0.0\").")
	stringFlag(fs, o, &f.AdvertiseAddr, "advertise", "advertise_addr", "Address other agents reach this one at.")
	stringFlag(fs, o, &f.ClientAddr, "client", "client_addr", "Address(es), space-separated, for the HTTP API and DNS (default \"127.0.0.1\").")
	intFlag(fs, o, &f.Ports.HTTP, "http-port", "ports.http", "HTTP API port (default 8500; -1 disables).")
	intFlag(fs, o, &f.Ports.DNS, "dns-port", "ports.dns", "DNS port (default 8600; -1 disables).")
	intFlag(fs, o, &f.Ports.Server, "server-port", "ports.server", "Server RPC and Raft port (default 8300).")
	intFlag(fs, o, &f.Ports.SerfLAN, "serf-lan-port", "ports.serf_lan", "LAN gossip port (default 8301).")
	intFlag(fs, o, &f.Ports.SerfWAN, "serf-wan-port", "ports.serf_wan", "WAN gossip port (default 8302; -1 disables).")
	stringFlag(fs, o, &f.Domain, "domain", "domain", "DNS domain answered by this agent (default \"consul.\").")
	stringFlag(fs, o, &f.AltDomain, "alt-domain", "alt_domain", "A second DNS domain answered like -domain (default none).")
	listFlag(fs, o, &f.Recursors, "recursor", "recursors", "Upstream DNS server (ip or ip:port) for names outside the domain. Repeatable.")
	stringFlag(fs, o, &f.LogLevel, "log-level", "log_level", "Log level: trace, debug, info, warn or error (default \"info\").")
	boolFlag(fs, o, &f.EnableScriptChecks, "enable-script-checks", "enable_script_checks", "Allow script checks from any source, the HTTP API included.")
	boolFlag(fs, o, &f.EnableDebug, "enable-debug", "enable_debug", "Serve Go profiles under /debug/pprof/ on the HTTP API.")
	boolFlag(fs, o, &f.EnableLocalScriptChecks, "enable-local-script-checks", "enable_local_script_checks", "Allow script checks defined in config files.")
	listFlag(fs, o, &f.RetryJoin, "retry-join", "retry_join", "Address of an agent to join at start, retrying until it works. Repeatable.")
	listFlag(fs, o, &f.StartJoin, "join", "start_join", "Address of an agent to join at start. Repeatable.")
	listFlag(fs, o, &f.RetryJoinWAN, "retry-join-wan", "retry_join_wan", "Address of a server in another datacenter to join the WAN pool through, retrying until it works (servers). Repeatable.")
	listFlag(fs, o, &f.StartJoinWAN, "join-wan", "start_join_wan", "Address of a server in another datacenter to join the WAN pool through at start (servers). Repeatable.")
	stringFlag(fs, o, &f.AdvertiseAddrWAN, "advertise-wan", "advertise_addr_wan", "Address other datacenters reach this server at (default -advertise).")
	fs.Var(&metaValue{dst: &f.NodeMeta, record: o.recorder("-node-meta", "node_meta")}, "node-meta",
		"Node metadata as key:value. Repeatable.")
	return o
}

// recorder returns a function that notes that a flag set a setting.
func (o *LoadOptions) recorder(flagName, canon string) func() {
	return func() { o.flagNames[canon] = flagName }
}

func boolFlag(fs *flag.FlagSet, o *LoadOptions, dst **bool, name, canon, usage string) {
	fs.Var(&ptrValue[bool]{dst: dst, parse: strconv.ParseBool, isBool: true, record: o.recorder("-"+name, canon)}, name, usage)
}

func intFlag(fs *flag.FlagSet, o *LoadOptions, dst **int, name, canon, usage string) {
	parse := func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, errors.New("expected a whole number")
		}
		return n, nil
	}
	fs.Var(&ptrValue[int]{dst: dst, parse: parse, record: o.recorder("-"+name, canon)}, name, usage)
}

func stringFlag(fs *flag.FlagSet, o *LoadOptions, dst **string, name, canon, usage string) {
	parse := func(s string) (string, error) { return s, nil }
	fs.Var(&ptrValue[string]{dst: dst, parse: parse, record: o.recorder("-"+name, canon)}, name, usage)
}

func listFlag(fs *flag.FlagSet, o *LoadOptions, dst *[]string, name, canon, usage string) {
	fs.Var(&listValue{dst: dst, record: o.recorder("-"+name, canon)}, name, usage)
}

// ptrValue is a flag that allocates its setting when given, leaving it nil
// otherwise. The flag package makes zero values of it to print defaults, so
// every method copes with a nil dst.
type ptrValue[T any] struct {
	dst    **T
	parse  func(string) (T, error)
	isBool bool
	record func()
}

func (v *ptrValue[T]) String() string {
	if v == nil || v.dst == nil || *v.dst == nil {
		return ""
	}
	return fmt.Sprint(**v.dst)
}

func (v *ptrValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.dst = &x
	v.record()
	return nil
}

func (v *ptrValue[T]) IsBoolFlag() bool { return v != nil && v.isBool }

// listValue is a repeatable flag appending to a list.
type listValue struct {
	dst    *[]string
	record func()
}

func (v *listValue) String() string {
	if v == nil || v.dst == nil {
		return ""
	}
	return strings.Join(*v.dst, ",")
}

func (v *listValue) Set(s string) error {
	*v.dst = append(*v.dst, s)
	v.record()
	return nil
}

// metaValue is the repeatable -node-meta key:value flag.
type metaValue struct {
	dst    *map[string]string
	record func()
}

func (v *metaValue) String() string { return "" }

func (v *metaValue) Set(s string) error {
	key, value, ok := strings.Cut(s, ":")
	if !ok || key == "" {
		return errors.New("expected key:value")
	}
	if *v.dst == nil {
		*v.dst = make(map[string]string)
	}
	(*v.dst)[key] = value
	v.record()
	return nil
}

// pathsValue is -config-file and -config-dir: both append to one list so
// that sources load in command-line order.
type pathsValue struct{ dst *[]string }

func (v pathsValue) String() string {
	if v.dst == nil {
		return ""
	}
	return strings.Join(*v.dst, ",")
}

func (v pathsValue) Set(s string) error {
	*v.dst = append(*v.dst, s)
	return nil
}
