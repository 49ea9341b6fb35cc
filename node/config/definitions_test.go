package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestServiceValidate(t *testing.T) {
	ttl := func() *CheckDefinition { return &CheckDefinition{TTL: time.Second} }
	tests := []struct {
		name string
		svc  ServiceDefinition
		want string // "" for valid
	}{
		{name: "minimal", svc: ServiceDefinition{Name: "web"}},
		{name: "port bounds", svc: ServiceDefinition{Name: "web", Port: 65535}},
		{name: "missing name", svc: ServiceDefinition{Port: 80}, want: "Name: missing service name"},
		{name: "blank name", svc: ServiceDefinition{Name: " \t"}, want: "Name: missing service name"},
		{name: "negative port", svc: ServiceDefinition{Name: "web", Port: -1}, want: "Port: must be between 0 and 65535"},
		{name: "port too large", svc: ServiceDefinition{Name: "web", Port: 65536}, want: "Port: must be between 0 and 65535"},
		{name: "zero weights", svc: ServiceDefinition{Name: "web", Weights: &Weights{}}},
		{name: "negative passing weight", svc: ServiceDefinition{Name: "web", Weights: &Weights{Passing: -1}}, want: "Weights.Passing: must not be negative"},
		{name: "negative warning weight", svc: ServiceDefinition{Name: "web", Weights: &Weights{Passing: 1, Warning: -1}}, want: "Weights.Warning: must not be negative"},
		{name: "meta key characters", svc: ServiceDefinition{Name: "web", Meta: map[string]string{"a b": "1"}}, want: "Meta.a b: key may contain only letters, digits, '_' and '-'"},
		{name: "meta reserved prefix", svc: ServiceDefinition{Name: "web", Meta: map[string]string{"consul-x": "1"}}, want: `Meta.consul-x: keys starting with "consul-" are reserved`},
		{name: "meta value length", svc: ServiceDefinition{Name: "web", Meta: map[string]string{"k": strings.Repeat("v", 513)}}, want: "Meta.k: value longer than 512 bytes"},
		{name: "tagged address port", svc: ServiceDefinition{Name: "web", TaggedAddresses: map[string]ServiceAddress{"wan": {Port: 70000}}}, want: "TaggedAddresses.wan.Port: must be between 0 and 65535"},
		{name: "empty check is ignored", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{}, Checks: []*CheckDefinition{nil, {}}}},
		{name: "check without kind", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{Notes: "x"}}, want: "Check: must set one of TTL, HTTP, TCP, GRPC, Args or AliasService"},
		{
			name: "two kinds",
			svc:  ServiceDefinition{Name: "web", Checks: []*CheckDefinition{ttl(), {TTL: time.Second, HTTP: "http://a/", Interval: time.Second}}},
			want: "Checks[1].HTTP: cannot be combined with TTL: a check has exactly one kind",
		},
		{name: "negative TTL", svc: ServiceDefinition{Name: "web", Checks: []*CheckDefinition{ttl(), {TTL: -time.Second}}}, want: "Checks[1].TTL: must be at least 1s, got -1s"},
		{name: "HTTP without interval", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{HTTP: "http://a/"}}, want: "Check.Interval: required for HTTP checks"},
		{name: "TCP without interval", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TCP: "a:1"}}, want: "Check.Interval: required for TCP checks"},
		{name: "script without interval", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{Args: []string{"x"}}}, want: "Check.Interval: required for Args checks"},
		{name: "TTL below a second", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: 500 * time.Millisecond}}, want: "Check.TTL: must be at least 1s, got 500ms"},
		{name: "interval below a second", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TCP: "a:1", Interval: 100 * time.Millisecond}}, want: "Check.Interval: must be at least 1s, got 100ms"},
		{name: "flap threshold without window", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second, FlapThreshold: 3}}, want: "Check.FlapWindow: required when FlapThreshold is set"},
		{name: "negative flap threshold", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second, FlapThreshold: -1}}, want: "Check.FlapThreshold: must not be negative"},
		{name: "negative interval", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{GRPC: "a:1", Interval: -1}}, want: "Check.Interval: must be at least 1s, got -1ns"},
		{name: "TTL check with negative interval", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second, Interval: -1}}, want: "Check.Interval: must not be negative"},
		{name: "GRPC with service", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{GRPC: "127.0.0.1:9090/my.Service", Interval: time.Second}}},
		{name: "bad GRPC", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{GRPC: "nope", Interval: time.Second}}, want: `Check.GRPC: must be host:port or host:port/service, got "nope"`},
		{name: "bad TCP", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TCP: "host:http", Interval: time.Second}}, want: `Check.TCP: must be host:port, got "host:http"`},
		{name: "bad HTTP", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{HTTP: "localhost:80/health", Interval: time.Second}}, want: `Check.HTTP: must be an http or https URL, got "localhost:80/health"`},
		{name: "empty command", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{Args: []string{""}, Interval: time.Second}}, want: "Check.Args[0]: empty command"},
		{name: "alias node only", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{AliasNode: "n1"}}},
		{name: "status", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second, Status: "ok"}}, want: `Check.Status: must be passing, warning or critical, got "ok"`},
		{name: "negative timeout", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second, Timeout: -1}}, want: "Check.Timeout: must not be negative"},
		{name: "negative deregister", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second, DeregisterCriticalServiceAfter: -1}}, want: "Check.DeregisterCriticalServiceAfter: must not be negative"},
		{name: "negative failures", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second, FailuresBeforeCritical: -1}}, want: "Check.FailuresBeforeCritical: must not be negative"},
		{name: "negative successes", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second, SuccessBeforePassing: -2}}, want: "Check.SuccessBeforePassing: must not be negative"},
		{name: "method", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{HTTP: "http://a/", Interval: time.Second, Method: "GET /"}}, want: `Check.Method: invalid HTTP method "GET /"`},
		{name: "empty header name", svc: ServiceDefinition{Name: "web", Check: &CheckDefinition{HTTP: "http://a/", Interval: time.Second, Header: map[string][]string{" ": {"x"}}}}, want: "Check.Header: empty header name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.svc.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Errorf("error %T is not a FieldError matching ErrInvalid", err)
			}
		})
	}
}

func TestCheckValidate(t *testing.T) {
	tests := []struct {
		name  string
		check CheckDefinition
		want  string
	}{
		{name: "ttl", check: CheckDefinition{Name: "mem", TTL: time.Minute}},
		{name: "missing name", check: CheckDefinition{TTL: time.Minute}, want: "Name: missing check name"},
		{name: "no kind", check: CheckDefinition{Name: "mem"}, want: "check must set one of TTL, HTTP, TCP, GRPC, Args or AliasService"},
		{name: "service check", check: CheckDefinition{Name: "mem", ServiceID: "web", HTTP: "https://x/", Interval: time.Second}},
		{name: "bad interval", check: CheckDefinition{Name: "mem", TCP: "a:1", Interval: -time.Second}, want: "Interval: must be at least 1s, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestServiceNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   ServiceDefinition
		want ServiceDefinition
	}{{
		name: "defaults",
		in:   ServiceDefinition{Name: "web"},
		want: ServiceDefinition{ID: "web", Name: "web", Weights: &Weights{Passing: 1, Warning: 1}},
	}, {
		name: "given values kept",
		in:   ServiceDefinition{ID: "web-2", Name: "web", Weights: &Weights{Passing: 5}},
		want: ServiceDefinition{ID: "web-2", Name: "web", Weights: &Weights{Passing: 5}},
	}, {
		name: "one check",
		in:   ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: time.Second}, Checks: []*CheckDefinition{{}}},
		want: ServiceDefinition{
			ID: "web", Name: "web", Weights: &Weights{Passing: 1, Warning: 1},
			Check: &CheckDefinition{ID: "service:web", Name: "Service 'web' check", ServiceID: "web", TTL: time.Second},
		},
	}, {
		name: "several checks",
		in: ServiceDefinition{ID: "w1", Name: "web", Check: &CheckDefinition{TTL: time.Second},
			Checks: []*CheckDefinition{nil, {TTL: 2 * time.Second, Name: "two"}, {ID: "mine", TTL: 3 * time.Second, ServiceID: "other"}}},
		want: ServiceDefinition{
			ID: "w1", Name: "web", Weights: &Weights{Passing: 1, Warning: 1},
			Check: &CheckDefinition{ID: "service:w1:1", Name: "Service 'web' check", ServiceID: "w1", TTL: time.Second},
			Checks: []*CheckDefinition{
				{ID: "service:w1:2", Name: "two", ServiceID: "w1", TTL: 2 * time.Second},
				{ID: "mine", Name: "Service 'web' check", ServiceID: "w1", TTL: 3 * time.Second},
			},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			got.Normalize()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", dump(got), dump(tt.want))
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate after Normalize: %v", err)
			}
		})
	}
}

func TestCheckNormalizeAndType(t *testing.T) {
	c := CheckDefinition{Name: "mem", TTL: time.Second}
	c.Normalize()
	if c.ID != "mem" {
		t.Errorf("ID = %q, want the name", c.ID)
	}
	for _, tt := range []struct {
		check CheckDefinition
		want  string
	}{
		{CheckDefinition{}, ""},
		{CheckDefinition{TTL: 1}, CheckTypeTTL},
		{CheckDefinition{HTTP: "http://a/"}, CheckTypeHTTP},
		{CheckDefinition{TCP: "a:1"}, CheckTypeTCP},
		{CheckDefinition{GRPC: "a:1"}, CheckTypeGRPC},
		{CheckDefinition{Args: []string{"x"}}, CheckTypeScript},
		{CheckDefinition{AliasService: "db"}, CheckTypeAlias},
		{CheckDefinition{AliasNode: "n1"}, CheckTypeAlias},
	} {
		if got := tt.check.Type(); got != tt.want {
			t.Errorf("Type of %s = %q, want %q", dump(tt.check), got, tt.want)
		}
	}
}
