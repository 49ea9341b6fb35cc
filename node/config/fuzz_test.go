package config

import (
	"errors"
	"testing"
)

// FuzzParseFile feeds arbitrary bytes to the file parser as HCL and as JSON,
// then builds a Runtime from whatever parsed. Nothing may panic, and every
// error must be a bad-input error. testdata/fuzz/FuzzParseFile holds, besides
// real configs, the literals on which hcl's token.Value panics.
func FuzzParseFile(f *testing.F) {
	for _, seed := range []string{
		`service { name = "web" port = 80 tags = ["v1"] check { ttl = "10s" } }`,
		"services { name = \"a\" }\nservices { name = \"b\" checks = [{ http = \"http://x:1/\", interval = \"1s\" }] }",
		`services = [{ name = "a", port = 1 }, { name = "b", port = 2 }]`,
		"ports {\n  http = 8501\n  dns = -1\n}\nnode_meta { rack = \"r1\" }\ndns_config { service_ttl { \"web*\" = \"1s\" } }",
		"server = true\nbootstrap_expect = 3\nretry_join = [\"10.0.0.1\"]\nlog_level = \"DEBUG\"",
		`{"service": {"name": "web", "check": {"ttl": "10s"}, "weights": {"passing": 3}}}`,
		`{"services": [{"name": "a"}, {"name": "b", "port": 2}], "check": {"name": "mem", "args": ["x"], "interval": "1s"}}`,
		`{"datacenter": "DC1", "ports": {"http": 1e3}, "node_meta": {"a": "b"}}`,
		"a = <<EOF\nhello\nEOF\n",
		"a = <<-EOF\n  hello\n  EOF\n",
		`bootstrap_expect = 99999999999999999999`,
		`node_name = "\x"`,
		`service "web" { port = 80 }`,
		"",
		"{",
		"[1, 2]",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []Format{FormatHCL, FormatJSON} {
			file, src, err := parseFile("fuzz", data, format)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("format %d: error %q does not match ErrInvalid", format, err)
				}
				continue
			}
			b := &builder{origins: make(map[string]origin)}
			b.add(defaultFile("fuzz", nil), func(canon string) origin { return origin{prefix: "default", key: canon} })
			b.add(file, src.where)
			if _, err := b.build(true, nil); err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("format %d: build error %q does not match ErrInvalid", format, err)
			}
		}
	})
}

// FuzzDecodeServiceJSON feeds arbitrary bodies to the HTTP API's decoder for
// service registrations and check registrations. Nothing may panic; errors
// must be *FieldError values matching ErrInvalid; and a definition that
// validates must still validate after Normalize.
func FuzzDecodeServiceJSON(f *testing.F) {
	for _, seed := range []string{
		`{"ID":"web1","Name":"web","Tags":["v1"],"Port":80,"Meta":{"v":"1"},"Weights":{"Passing":3,"Warning":1},
		  "Check":{"CheckID":"c1","TTL":"10s"},"Checks":[{"HTTP":"http://127.0.0.1/","Interval":"1m30s","Header":{"X":["a"]}}]}`,
		`{"name":"web","port":80,"check":{"check_id":"c","ttl":"10s","deregister_critical_service_after":"1m"}}`,
		`{"Name":"web","Check":{"TTL":10000000000,"Timeout":1.5e9}}`,
		`{"Name":"web","Checks":[{"ScriptArgs":["/bin/true"],"Interval":"1s"},{"GRPC":"a:1/svc","Interval":"1s"}]}`,
		`{"Name":"web","Port":"80"}`,
		`{"Name":"web","Port":1e400}`,
		`{"Name":"web","Checks":{"TTL":"1s"}}`,
		`{"Name":"web","Check":{"AliasNode":"n1"},"TaggedAddresses":{"lan":{"Address":"a","Port":1}}}`,
		`{"Name":"web","Check":{}}`,
		`{"Name":"web","Check":{"Name":"x","HTTP":"http://a/","Interval":"-1s"}}`,
		`[{"Name":"web"}]`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var svc ServiceDefinition
		if err := DecodeJSON(body, &svc, DecodeOptions{}); err != nil {
			checkBadInput(t, err)
		} else if err := svc.Validate(); err != nil {
			checkBadInput(t, err)
		} else {
			svc.Normalize()
			if err := svc.Validate(); err != nil {
				t.Fatalf("valid before Normalize, not after: %v", err)
			}
			if svc.ID == "" {
				t.Fatalf("Normalize left the ID empty")
			}
		}

		var check CheckDefinition
		if err := DecodeJSON(body, &check, DecodeOptions{ErrorUnused: true}); err != nil {
			checkBadInput(t, err)
		} else if err := check.Validate(); err != nil {
			checkBadInput(t, err)
		} else {
			check.Normalize()
			if err := check.Validate(); err != nil {
				t.Fatalf("valid before Normalize, not after: %v", err)
			}
		}
	})
}

func checkBadInput(t *testing.T, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %q (%T) is not a FieldError matching ErrInvalid", err, err)
	}
}
