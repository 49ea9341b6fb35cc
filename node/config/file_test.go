package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// normalized returns s after Normalize, as ParseFile hands definitions out.
func normalized(s ServiceDefinition) *ServiceDefinition {
	s.Normalize()
	return &s
}

func TestParseFileServiceForms(t *testing.T) {
	web := normalized(ServiceDefinition{Name: "web", Port: 80, Tags: []string{"v1"}, Check: &CheckDefinition{TTL: 10 * time.Second}})
	a := normalized(ServiceDefinition{Name: "a", Port: 1})
	b := normalized(ServiceDefinition{Name: "b", Port: 2, Checks: []*CheckDefinition{
		{HTTP: "http://localhost:2/health", Interval: 10 * time.Second},
		{TTL: time.Minute},
	}})
	tests := []struct {
		name         string
		file         string
		src          string
		wantService  *ServiceDefinition
		wantServices []*ServiceDefinition
	}{{
		name:        "HCL service block on one line",
		file:        "web.hcl",
		src:         `service { name = "web" port = 80 tags = ["v1"] check { ttl = "10s" } }`,
		wantService: web,
	}, {
		name: "HCL repeated services blocks",
		file: "s.hcl",
		src: `
services {
  name = "a"
  port = 1
}
services {
  name = "b"
  port = 2
  checks = [
    { http = "http://localhost:2/health", interval = "10s" },
    { ttl = "1m" },
  ]
}`,
		wantServices: []*ServiceDefinition{a, b},
	}, {
		name: "HCL repeated check blocks inside a service",
		file: "s.hcl",
		src: `
services { name = "a"  port = 1 }
services {
  name = "b"
  port = 2
  checks { http = "http://localhost:2/health"  interval = "10s" }
  checks { ttl = "1m" }
}`,
		wantServices: []*ServiceDefinition{a, b},
	}, {
		name: "HCL services list",
		file: "s.hcl",
		src: `services = [
  { name = "a", port = 1 },
  { name = "b", port = 2, checks = [{ http = "http://localhost:2/health", interval = "10s" }, { ttl = "1m" }] },
]`,
		wantServices: []*ServiceDefinition{a, b},
	}, {
		name:         "HCL single services block",
		file:         "s.hcl",
		src:          `services { name = "a" port = 1 }`,
		wantServices: []*ServiceDefinition{a},
	}, {
		name:         "HCL services block and list mixed",
		file:         "s.hcl",
		src:          "services { name = \"a\" port = 1 }\nservices = [{ name = \"b\", port = 2, checks = [{ http = \"http://localhost:2/health\", interval = \"10s\" }, { ttl = \"1m\" }] }]",
		wantServices: []*ServiceDefinition{a, b},
	}, {
		name:        "JSON service object",
		file:        "web.json",
		src:         `{"service": {"name": "web", "port": 80, "tags": ["v1"], "check": {"ttl": "10s"}}}`,
		wantService: web,
	}, {
		name:        "JSON service whose members are all objects",
		file:        "web.json",
		src:         `{"service": {"check": {"ttl": "10s"}, "weights": {"passing": 2, "warning": 1}, "meta": {"k": "v"}}}`,
		wantService: nil, // no name: an error, see TestParseFileErrors; here the shape must not be mistaken for two blocks
	}, {
		name: "JSON services list",
		file: "s.json",
		src: `{"services": [{"name": "a", "port": 1},
			{"name": "b", "port": 2, "checks": [{"http": "http://localhost:2/health", "interval": "10s"}, {"ttl": "1m"}]}]}`,
		wantServices: []*ServiceDefinition{a, b},
	}, {
		name:         "JSON services as one object",
		file:         "s.json",
		src:          `{"services": {"name": "a", "port": 1}}`,
		wantServices: []*ServiceDefinition{a},
	}, {
		name:        "JSON with CamelCase keys, as the HTTP API takes them",
		file:        "web.json",
		src:         `{"service": {"Name": "web", "Port": 80, "Tags": ["v1"], "Check": {"TTL": "10s"}}}`,
		wantService: web,
	}, {
		name:        "JSON without extension is sniffed",
		file:        "web.conf",
		src:         "  \n{\"service\": {\"name\": \"web\", \"port\": 80, \"tags\": [\"v1\"], \"check\": {\"ttl\": \"10s\"}}}",
		wantService: web,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFile(tt.file, []byte(tt.src), FormatAuto)
			if tt.wantService == nil && tt.wantServices == nil {
				// Shape test: the only acceptable failure is the missing name.
				if err == nil || !strings.HasSuffix(err.Error(), "service.name: missing service name") {
					t.Fatalf("ParseFile: %v, want a missing-name error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if !reflect.DeepEqual(f.Service, tt.wantService) {
				t.Errorf("service\ngot  %s\nwant %s", dump(f.Service), dump(tt.wantService))
			}
			if !reflect.DeepEqual(f.Services, tt.wantServices) {
				t.Errorf("services\ngot  %s\nwant %s", dump(f.Services), dump(tt.wantServices))
			}
		})
	}
}

// TestParseFileHCLAndJSONAgree parses every setting in both syntaxes.
func TestParseFileHCLAndJSONAgree(t *testing.T) {
	hcl := `
datacenter = "EU-West"
node_name = "node-1"
node_id = "0D6E4A4B-6B7C-4C2A-9F3E-1B2C3D4E5F60"
data_dir = "/var/lib/meshd"
server = true
bootstrap_expect = 3
bind_addr = "10.0.0.5"
advertise_addr = "10.0.0.6"
client_addr = "127.0.0.1 10.0.0.5"
ports {
  http = 8501
  dns = -1
  server = 8300
  serf_lan = 8301
  serf_wan = 8302
}
domain = "mesh"
log_level = "DEBUG"
enable_script_checks = false
enable_local_script_checks = true
retry_join = ["10.0.0.1", "10.0.0.2"]
start_join = ["10.0.0.3"]
leave_on_terminate = true
skip_leave_on_interrupt = false
check_update_interval = "2m"
reconnect_timeout = "24h"
node_meta {
  rack = "r1"
  zone = "a"
}
dns_config {
  allow_stale = false
  max_stale = "10s"
  node_ttl = "30s"
  service_ttl {
    "*" = "5s"
    "web*" = "1m"
  }
  only_passing = true
  a_record_limit = 3
  udp_answer_limit = 5
  enable_truncate = false
}
recursors = ["8.8.8.8", "1.1.1.1:5353"]
check {
  id = "mem"
  name = "Memory"
  args = ["/usr/bin/check_mem", "-w", "90"]
  interval = "30s"
  timeout = "5s"
}
checks = [
  { name = "disk", script_args = ["/usr/bin/check_disk"], interval = "1m" },
]
`
	json := `{
  "datacenter": "EU-West",
  "node_name": "node-1",
  "node_id": "0D6E4A4B-6B7C-4C2A-9F3E-1B2C3D4E5F60",
  "data_dir": "/var/lib/meshd",
  "server": true,
  "bootstrap_expect": 3,
  "bind_addr": "10.0.0.5",
  "advertise_addr": "10.0.0.6",
  "client_addr": "127.0.0.1 10.0.0.5",
  "ports": {"http": 8501, "dns": -1, "server": 8300, "serf_lan": 8301, "serf_wan": 8302},
  "domain": "mesh",
  "log_level": "DEBUG",
  "enable_script_checks": false,
  "enable_local_script_checks": true,
  "retry_join": ["10.0.0.1", "10.0.0.2"],
  "start_join": ["10.0.0.3"],
  "leave_on_terminate": true,
  "skip_leave_on_interrupt": false,
  "check_update_interval": "2m",
  "reconnect_timeout": "24h",
  "node_meta": {"rack": "r1", "zone": "a"},
  "dns_config": {
    "allow_stale": false, "max_stale": "10s", "node_ttl": "30s",
    "service_ttl": {"*": "5s", "web*": "1m"},
    "only_passing": true, "a_record_limit": 3, "udp_answer_limit": 5, "enable_truncate": false
  },
  "recursors": ["8.8.8.8", "1.1.1.1:5353"],
  "check": {"id": "mem", "name": "Memory", "args": ["/usr/bin/check_mem", "-w", "90"], "interval": "30s", "timeout": "5s"},
  "checks": [{"name": "disk", "script_args": ["/usr/bin/check_disk"], "interval": "1m"}]
}`
	want := &File{
		Datacenter:              ptr("EU-West"),
		NodeName:                ptr("node-1"),
		NodeID:                  ptr("0D6E4A4B-6B7C-4C2A-9F3E-1B2C3D4E5F60"),
		DataDir:                 ptr("/var/lib/meshd"),
		Server:                  ptr(true),
		BootstrapExpect:         ptr(3),
		BindAddr:                ptr("10.0.0.5"),
		AdvertiseAddr:           ptr("10.0.0.6"),
		ClientAddr:              ptr("127.0.0.1 10.0.0.5"),
		Ports:                   FilePorts{HTTP: ptr(8501), DNS: ptr(-1), Server: ptr(8300), SerfLAN: ptr(8301), SerfWAN: ptr(8302)},
		Domain:                  ptr("mesh"),
		LogLevel:                ptr("DEBUG"),
		EnableScriptChecks:      ptr(false),
		EnableLocalScriptChecks: ptr(true),
		RetryJoin:               []string{"10.0.0.1", "10.0.0.2"},
		StartJoin:               []string{"10.0.0.3"},
		LeaveOnTerminate:        ptr(true),
		SkipLeaveOnInterrupt:    ptr(false),
		CheckUpdateInterval:     ptr(2 * time.Minute),
		ReconnectTimeout:        ptr(24 * time.Hour),
		NodeMeta:                map[string]string{"rack": "r1", "zone": "a"},
		DNS: FileDNS{
			AllowStale:     ptr(false),
			MaxStale:       ptr(10 * time.Second),
			NodeTTL:        ptr(30 * time.Second),
			ServiceTTL:     map[string]time.Duration{"*": 5 * time.Second, "web*": time.Minute},
			OnlyPassing:    ptr(true),
			ARecordLimit:   ptr(3),
			UDPAnswerLimit: ptr(5),
			EnableTruncate: ptr(false),
		},
		Recursors: []string{"8.8.8.8", "1.1.1.1:5353"},
		Check: &CheckDefinition{
			ID: "mem", Name: "Memory", Args: []string{"/usr/bin/check_mem", "-w", "90"},
			Interval: 30 * time.Second, Timeout: 5 * time.Second,
		},
		Checks: []*CheckDefinition{{ID: "disk", Name: "disk", Args: []string{"/usr/bin/check_disk"}, Interval: time.Minute}},
	}
	for name, src := range map[string]string{"a.hcl": hcl, "a.json": json} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFile(name, []byte(src), FormatAuto)
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %s\nwant %s", dump(got), dump(want))
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		src     string
		want    string
		wantErr error
	}{{
		name:    "unknown key in a block",
		file:    "/etc/meshd/a.hcl",
		src:     "server = true\n\nports {\n  http = 8500\n  htp = 1\n}\n",
		want:    "/etc/meshd/a.hcl:5: ports.htp: unknown field",
		wantErr: ErrUnknownField,
	}, {
		name:    "unknown top-level key in JSON",
		file:    "a.json",
		src:     "{\n  \"server\": true,\n  \"acl\": {\"enabled\": true}\n}",
		want:    "a.json:3: acl: unknown field",
		wantErr: ErrUnknownField,
	}, {
		name:    "unknown key in a service check",
		file:    "a.hcl",
		src:     "service {\n  name = \"web\"\n  check {\n    ttl = \"1s\"\n    shell = \"sh\"\n  }\n}",
		want:    "a.hcl:5: service.check.shell: unknown field",
		wantErr: ErrUnknownField,
	}, {
		name:    "labelled service block",
		file:    "a.hcl",
		src:     "service \"web\" {\n  port = 80\n}",
		want:    "a.hcl:1: service.web: unknown field",
		wantErr: ErrUnknownField,
	}, {
		name: "wrong type on line 12",
		file: "/etc/meshd/a.hcl",
		src:  strings.Repeat("# comment\n", 9) + "ports {\n\n  http = \"8500\"\n}\n",
		want: "/etc/meshd/a.hcl:12: ports.http: expected a number, got string",
	}, {
		name: "wrong type in JSON",
		file: "a.json",
		src:  "{\n  \"ports\": {\n    \"http\": true\n  }\n}",
		want: "a.json:3: ports.http: expected a number, got bool",
	}, {
		name: "bad duration",
		file: "a.hcl",
		src:  "server = true\ncheck_update_interval = \"5 minutes\"",
		want: `a.hcl:2: check_update_interval: invalid duration "5 minutes"`,
	}, {
		name: "bad duration in a JSON service check list",
		file: "a.json",
		src:  "{\"services\": [\n {\"name\": \"a\"},\n {\"name\": \"b\",\n  \"checks\": [{\"ttl\": \"1s\"},\n    {\"tcp\": \"b:1\", \"interval\": \"often\"}]}]}",
		want: `a.json:5: services[1].checks[1].interval: invalid duration "often"`,
	}, {
		name: "bad duration in a service map",
		file: "a.hcl",
		src:  "dns_config {\n  service_ttl {\n    \"web*\" = \"1 minute\"\n  }\n}",
		want: `a.hcl:3: dns_config.service_ttl.web*: invalid duration "1 minute"`,
	}, {
		name: "service port out of range",
		file: "a.hcl",
		src:  "services {\n  name = \"a\"\n}\nservices {\n  name = \"b\"\n  port = 70000\n}",
		want: "a.hcl:6: services[1].port: must be between 0 and 65535",
	}, {
		name: "service without name",
		file: "a.hcl",
		src:  "server = true\nservice {\n  port = 80\n}",
		want: "a.hcl:2: service.name: missing service name",
	}, {
		name: "JSON service whose members are all objects, without name",
		file: "a.json",
		src:  "{\"service\": {\n \"check\": {\"ttl\": \"10s\"},\n \"weights\": {\"passing\": 1}}}",
		want: "a.json:1: service.name: missing service name",
	}, {
		name: "service check without interval",
		file: "a.hcl",
		src:  "service {\n  name = \"web\"\n  check {\n    http = \"http://localhost/\"\n  }\n}",
		want: "a.hcl:3: service.check.interval: required for HTTP checks",
	}, {
		name: "service check validated in CamelCase JSON",
		file: "a.json",
		src:  "{\"service\": {\"Name\": \"web\",\n \"Checks\": [{\"TTL\": \"1s\"}, {\"TTL\": \"1s\",\n  \"Status\": \"ok\"}]}}",
		want: `a.json:3: service.Checks[1].Status: must be passing, warning or critical, got "ok"`,
	}, {
		name: "top-level check without name",
		file: "a.hcl",
		src:  "check {\n  ttl = \"10s\"\n}",
		want: "a.hcl:1: check.name: missing check name",
	}, {
		name: "two service blocks",
		file: "a.hcl",
		src:  "service { name = \"a\" }\nservice { name = \"b\" }",
		want: "a.hcl:1: service: expected one block, got 2",
	}, {
		name: "two spellings of one key",
		file: "a.hcl",
		src:  "node_name = \"a\"\nNodeName = \"b\"",
		want: `a.hcl:1: node_name: same field as "NodeName"`,
	}, {
		name: "value where a block is due",
		file: "a.hcl",
		src:  "ports = 8500",
		want: "a.hcl:1: ports: expected an object, got number",
	}, {
		name:    "HCL syntax",
		file:    "a.hcl",
		src:     "server = true\nports {\n  http = \n}",
		want:    "a.hcl:4: syntax error: ",
		wantErr: ErrSyntax,
	}, {
		name:    "HCL number too large",
		file:    "a.hcl",
		src:     "bootstrap_expect = 99999999999999999999",
		want:    "a.hcl:1: syntax error: invalid number 99999999999999999999",
		wantErr: ErrSyntax,
	}, {
		name:    "HCL nested too deep",
		file:    "a.hcl",
		src:     "server = true\nretry_join = " + strings.Repeat("[", 100),
		want:    "a.hcl:2: syntax error: nested more than 64 levels",
		wantErr: ErrSyntax,
	}, {
		name:    "HCL blocks nested too deep",
		file:    "a.hcl",
		src:     strings.Repeat("a {\n", 65) + strings.Repeat("}\n", 65),
		want:    "a.hcl:65: syntax error: nested more than 64 levels",
		wantErr: ErrSyntax,
	}, {
		name:    "JSON nested too deep",
		file:    "a.json",
		src:     "{\"a\":\n" + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}",
		want:    "a.json:2: syntax error: nested more than 64 levels",
		wantErr: ErrSyntax,
	}, {
		name:    "JSON syntax",
		file:    "a.json",
		src:     "{\n  \"server\": true,\n  \"ports\": {\"http\": 1,}\n}",
		want:    "a.json:3: syntax error: invalid character '}' looking for beginning of object key string",
		wantErr: ErrSyntax,
	}, {
		name:    "JSON truncated",
		file:    "a.json",
		src:     "{\n  \"server\": true,\n",
		want:    "a.json:2: syntax error: unexpected end of JSON input",
		wantErr: ErrSyntax,
	}, {
		name:    "JSON top-level list",
		file:    "a.json",
		src:     `[{"server": true}]`,
		want:    "a.json:1: syntax error: expected a JSON object at the top level",
		wantErr: ErrSyntax,
	}, {
		name:    "JSON trailing data",
		file:    "a.json",
		src:     "{}\n{}",
		want:    "a.json:2: syntax error: data after the top-level object",
		wantErr: ErrSyntax,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFile(tt.file, []byte(tt.src), FormatAuto)
			if err == nil {
				t.Fatalf("ParseFile succeeded: %s", dump(f))
			}
			if got := err.Error(); got != tt.want && !(tt.wantErr == ErrSyntax && strings.HasPrefix(got, tt.want)) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not match ErrInvalid", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not match %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseFileEmpty(t *testing.T) {
	for _, name := range []string{"a.hcl", "a.json"} {
		f, err := ParseFile(name, []byte(" \n"), FormatAuto)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(f, &File{}) {
			t.Errorf("%s: got %s, want nothing set", name, dump(f))
		}
	}
}

// TestParseFileBracketsInStrings: the nesting pre-check skips strings and
// comments, so brackets there never count.
func TestParseFileBracketsInStrings(t *testing.T) {
	deep := strings.Repeat("[", 100)
	src := "# " + deep + "\n// " + deep + "\n/* " + deep + "\n*/\nretry_join = [\"" + deep + "\", \"\\\"" + deep + "\"]\n"
	f, err := ParseFile("a.hcl", []byte(src), FormatHCL)
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	if want := []string{deep, `"` + deep}; !reflect.DeepEqual(f.RetryJoin, want) {
		t.Errorf("RetryJoin = %q, want %q", f.RetryJoin, want)
	}
}
