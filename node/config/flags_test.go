package config

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestAddFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantFlags File
		wantOpts  LoadOptions // Dev and ConfigFiles only
	}{{
		name: "nothing given sets nothing",
	}, {
		name: "every flag",
		args: []string{
			"-dev", "-server", "-bootstrap=false", "-bootstrap-expect", "3",
			"-data-dir", "/data", "-node", "n1", "-node-id", "0d6e4a4b-6b7c-4c2a-9f3e-1b2c3d4e5f60",
			"-datacenter", "dc2", "-bind", "10.0.0.1", "-advertise", "10.0.0.2", "-client", "0.0.0.0",
			"-http-port", "1", "-dns-port", "2", "-server-port", "3", "-serf-lan-port", "4", "-serf-wan-port", "-1",
			"-domain", "mesh.", "-log-level", "debug",
			"-config-file", "a.hcl", "-config-dir", "conf.d", "-config-file", "b.json",
			"-enable-script-checks", "-enable-local-script-checks=true",
			"-retry-join", "r1", "-retry-join", "r2", "-join", "j1",
			"-node-meta", "rack:r1", "-node-meta", "url:http://x",
		},
		wantFlags: File{
			Server: ptr(true), Bootstrap: ptr(false), BootstrapExpect: ptr(3),
			DataDir: ptr("/data"), NodeName: ptr("n1"), NodeID: ptr("0d6e4a4b-6b7c-4c2a-9f3e-1b2c3d4e5f60"),
			Datacenter: ptr("dc2"), BindAddr: ptr("10.0.0.1"), AdvertiseAddr: ptr("10.0.0.2"), ClientAddr: ptr("0.0.0.0"),
			Ports:  FilePorts{HTTP: ptr(1), DNS: ptr(2), Server: ptr(3), SerfLAN: ptr(4), SerfWAN: ptr(-1)},
			Domain: ptr("mesh."), LogLevel: ptr("debug"),
			EnableScriptChecks: ptr(true), EnableLocalScriptChecks: ptr(true),
			RetryJoin: []string{"r1", "r2"}, StartJoin: []string{"j1"},
			NodeMeta: map[string]string{"rack": "r1", "url": "http://x"},
		},
		wantOpts: LoadOptions{Dev: true, ConfigFiles: []string{"a.hcl", "conf.d", "b.json"}},
	}, {
		name:      "false is set, not unset",
		args:      []string{"-server=false"},
		wantFlags: File{Server: ptr(false)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("agent", flag.ContinueOnError)
			opts := AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(opts.Flags, tt.wantFlags) {
				t.Errorf("Flags\ngot  %s\nwant %s", dump(opts.Flags), dump(tt.wantFlags))
			}
			if opts.Dev != tt.wantOpts.Dev || !reflect.DeepEqual(opts.ConfigFiles, tt.wantOpts.ConfigFiles) {
				t.Errorf("Dev %t ConfigFiles %q, want %t %q", opts.Dev, opts.ConfigFiles, tt.wantOpts.Dev, tt.wantOpts.ConfigFiles)
			}
		})
	}
}

func TestAddFlagsBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"-http-port", "http"},
		{"-bootstrap-expect", "1.5"},
		{"-server=maybe"},
		{"-node-meta", "novalue"},
		{"-node-meta", ":v"},
	} {
		fs := flag.NewFlagSet("agent", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		AddFlags(fs)
		if err := fs.Parse(args); err == nil {
			t.Errorf("Parse(%q) succeeded", args)
		}
	}
}

func TestAddFlagsUsage(t *testing.T) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	AddFlags(fs)
	fs.PrintDefaults() // must not panic on the flags' zero values
	for _, name := range []string{
		"dev", "server", "bootstrap", "bootstrap-expect", "data-dir", "node", "node-id", "datacenter",
		"bind", "advertise", "client", "http-port", "dns-port", "server-port", "serf-lan-port", "domain",
		"log-level", "config-file", "config-dir", "enable-script-checks", "enable-local-script-checks",
		"retry-join", "join", "node-meta",
	} {
		if fs.Lookup(name) == nil {
			t.Errorf("flag -%s not registered", name)
		}
	}
	if !strings.Contains(out.String(), "-server\n") {
		t.Errorf("-server should print as a boolean flag:\n%s", out.String())
	}
}
