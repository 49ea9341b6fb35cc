package dns_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	meshdns "github.com/meshd/meshd/dns"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*meshdns.Config)
		wantErr string // "" = valid
	}{
		{name: "defaults", mutate: func(*meshdns.Config) {}},
		{name: "domain without final dot", mutate: func(c *meshdns.Config) { c.Domain = "meshd.example" }},
		{name: "zero TTLs", mutate: func(c *meshdns.Config) { c.ServiceTTL, c.NodeTTL = 0, 0 }},
		{name: "record limit", mutate: func(c *meshdns.Config) { c.ARecordLimit = 3 }},
		{name: "empty domain", mutate: func(c *meshdns.Config) { c.Domain = "" }, wantErr: "domain is empty"},
		{name: "root domain", mutate: func(c *meshdns.Config) { c.Domain = "." }, wantErr: "domain"},
		{name: "domain with empty label", mutate: func(c *meshdns.Config) { c.Domain = "a..b" }, wantErr: "domain"},
		{name: "domain with space", mutate: func(c *meshdns.Config) { c.Domain = "my domain" }, wantErr: "domain"},
		{name: "domain label too long", mutate: func(c *meshdns.Config) { c.Domain = strings.Repeat("a", 64) }, wantErr: "domain"},
		{name: "empty datacenter", mutate: func(c *meshdns.Config) { c.Datacenter = "" }, wantErr: "datacenter"},
		{name: "datacenter with dot", mutate: func(c *meshdns.Config) { c.Datacenter = "dc.1" }, wantErr: "datacenter"},
		{name: "negative service TTL", mutate: func(c *meshdns.Config) { c.ServiceTTL = -time.Second }, wantErr: "service_ttl"},
		{name: "node TTL too large", mutate: func(c *meshdns.Config) { c.NodeTTL = 1 << 31 * time.Second }, wantErr: "node_ttl"},
		{name: "negative record limit", mutate: func(c *meshdns.Config) { c.ARecordLimit = -1 }, wantErr: "a_record_limit"},
		{name: "alt domain", mutate: func(c *meshdns.Config) { c.AltDomain = "meshd.example" }},
		{name: "alt domain inside the domain", mutate: func(c *meshdns.Config) { c.AltDomain = "alt.consul." }},
		{name: "alt domain is the domain", mutate: func(c *meshdns.Config) { c.AltDomain = "CONSUL" }, wantErr: "alt_domain"},
		{name: "alt domain root", mutate: func(c *meshdns.Config) { c.AltDomain = "." }, wantErr: "alt_domain"},
		{name: "alt domain with space", mutate: func(c *meshdns.Config) { c.AltDomain = "a b" }, wantErr: "alt_domain"},
		{name: "service TTLs", mutate: func(c *meshdns.Config) {
			c.ServiceTTLs = map[string]time.Duration{"*": time.Second, "web*": 0, "db": time.Minute}
		}},
		{name: "service TTL key empty", mutate: func(c *meshdns.Config) {
			c.ServiceTTLs = map[string]time.Duration{"": time.Second}
		}, wantErr: "service_ttl key is empty"},
		{name: "service TTL star inside", mutate: func(c *meshdns.Config) {
			c.ServiceTTLs = map[string]time.Duration{"w*b": time.Second}
		}, wantErr: `"w*b"`},
		{name: "service TTL two stars", mutate: func(c *meshdns.Config) {
			c.ServiceTTLs = map[string]time.Duration{"**": time.Second}
		}, wantErr: `"**"`},
		{name: "service TTL keys differing in case", mutate: func(c *meshdns.Config) {
			c.ServiceTTLs = map[string]time.Duration{"Web": time.Second, "web": time.Second}
		}, wantErr: "differ only in case"},
		{name: "service TTL negative", mutate: func(c *meshdns.Config) {
			c.ServiceTTLs = map[string]time.Duration{"db": -time.Second}
		}, wantErr: `service_ttl["db"]`},
		{name: "service TTL too large", mutate: func(c *meshdns.Config) {
			c.ServiceTTLs = map[string]time.Duration{"web*": 1 << 31 * time.Second}
		}, wantErr: `service_ttl["web*"]`},
		{name: "recursors", mutate: func(c *meshdns.Config) { c.Recursors = []string{"8.8.8.8:53", "[2001:db8::1]:5353"} }},
		{name: "recursor without port", mutate: func(c *meshdns.Config) { c.Recursors = []string{"8.8.8.8"} }, wantErr: `recursor "8.8.8.8"`},
		{name: "recursor hostname", mutate: func(c *meshdns.Config) { c.Recursors = []string{"dns.google:53"} }, wantErr: "recursor"},
		{name: "recursor port 0", mutate: func(c *meshdns.Config) { c.Recursors = []string{"8.8.8.8:0"} }, wantErr: "port 0"},
		{name: "recursor timeout zero with recursors", mutate: func(c *meshdns.Config) {
			c.Recursors, c.RecursorTimeout = []string{"8.8.8.8:53"}, 0
		}, wantErr: "recursor_timeout"},
		{name: "recursor timeout zero without recursors", mutate: func(c *meshdns.Config) { c.RecursorTimeout = 0 }},
		{name: "recursor timeout negative", mutate: func(c *meshdns.Config) { c.RecursorTimeout = -time.Second }, wantErr: "recursor_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := meshdns.DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := meshdns.New(cfg, newFixture()); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, meshdns.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate: %v, want ErrInvalidConfig naming %q", err, tc.wantErr)
			}
			if _, err := meshdns.New(cfg, newFixture()); !errors.Is(err, meshdns.ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestNewNilResolver(t *testing.T) {
	if _, err := meshdns.New(meshdns.DefaultConfig(), nil); !errors.Is(err, meshdns.ErrNilResolver) {
		t.Fatalf("New(nil resolver): %v, want ErrNilResolver", err)
	}
}
