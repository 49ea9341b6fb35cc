package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestDecodeJSONService(t *testing.T) {
	full := ServiceDefinition{
		ID:                "web1",
		Name:              "web",
		Tags:              []string{"v1", "eu"},
		Address:           "10.0.0.1",
		Port:              80,
		Meta:              map[string]string{"version": "1"},
		Weights:           &Weights{Passing: 3, Warning: 1},
		EnableTagOverride: true,
		Check:             &CheckDefinition{ID: "c1", TTL: 10 * time.Second},
		Checks: []*CheckDefinition{{
			HTTP:                           "http://127.0.0.1:80/health",
			Header:                         map[string][]string{"X-Token": {"a", "b"}},
			Method:                         "POST",
			Interval:                       90 * time.Second,
			Timeout:                        time.Second,
			DeregisterCriticalServiceAfter: 90 * time.Minute,
			TLSSkipVerify:                  true,
			FailuresBeforeCritical:         3,
		}, {
			Args:     []string{"/bin/check", "-q"},
			Interval: 10 * time.Second,
		}},
	}
	tests := []struct {
		name string
		body string
		want ServiceDefinition
	}{{
		name: "CamelCase",
		body: `{"ID":"web1","Name":"web","Tags":["v1","eu"],"Address":"10.0.0.1","Port":80,
			"Meta":{"version":"1"},"Weights":{"Passing":3,"Warning":1},"EnableTagOverride":true,
			"Check":{"CheckID":"c1","TTL":"10s"},
			"Checks":[{"HTTP":"http://127.0.0.1:80/health","Header":{"X-Token":["a","b"]},"Method":"POST",
				"Interval":"1m30s","Timeout":"1s","DeregisterCriticalServiceAfter":"90m","TLSSkipVerify":true,
				"FailuresBeforeCritical":3},
				{"ScriptArgs":["/bin/check","-q"],"Interval":"10s"}]}`,
		want: full,
	}, {
		name: "snake_case",
		body: `{"id":"web1","name":"web","tags":["v1","eu"],"address":"10.0.0.1","port":80,
			"meta":{"version":"1"},"weights":{"passing":3,"warning":1},"enable_tag_override":true,
			"check":{"check_id":"c1","ttl":"10s"},
			"checks":[{"http":"http://127.0.0.1:80/health","header":{"X-Token":["a","b"]},"method":"POST",
				"interval":"1m30s","timeout":"1s","deregister_critical_service_after":"90m","tls_skip_verify":true,
				"failures_before_critical":3},
				{"script_args":["/bin/check","-q"],"interval":"10s"}]}`,
		want: full,
	}, {
		name: "lowercase",
		body: `{"id":"web1","name":"web","tags":["v1","eu"],"address":"10.0.0.1","port":80,
			"meta":{"version":"1"},"weights":{"passing":3,"warning":1},"enabletagoverride":true,
			"check":{"checkid":"c1","ttl":"10s"},
			"checks":[{"http":"http://127.0.0.1:80/health","header":{"X-Token":["a","b"]},"method":"POST",
				"interval":"1m30s","timeout":"1s","deregistercriticalserviceafter":"90m","tlsskipverify":true,
				"failuresbeforecritical":3},
				{"args":["/bin/check","-q"],"interval":"10s"}]}`,
		want: full,
	}, {
		name: "unknown fields ignored",
		body: `{"Name":"web","Kind":"","Connect":{"Native":true},"Proxy":null,"Namespace":"ns",
			"SocketPath":"", "Check":{"TTL":"5s","H2PING":"","Shell":"sh","FailuresBeforeWarning":1}}`,
		want: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: 5 * time.Second}},
	}, {
		name: "durations as nanoseconds",
		body: `{"Name":"web","Check":{"TTL":10000000000,"Timeout":1.5e9,"Interval":""}}`,
		want: ServiceDefinition{Name: "web", Check: &CheckDefinition{TTL: 10 * time.Second, Timeout: 1500 * time.Millisecond}},
	}, {
		name: "nulls leave fields unset",
		body: `{"Name":"web","Check":null,"Checks":null,"Weights":null,"Tags":null,"Port":null}`,
		want: ServiceDefinition{Name: "web"},
	}, {
		name: "ID and CheckID: the canonical name wins",
		body: `{"Name":"web","Check":{"CheckID":"alias","ID":"canonical","TTL":"1s"}}`,
		want: ServiceDefinition{Name: "web", Check: &CheckDefinition{ID: "canonical", TTL: time.Second}},
	}, {
		name: "lone object where a list is due",
		body: `{"Name":"web","Checks":{"TTL":"1s"}}`,
		want: ServiceDefinition{Name: "web", Checks: []*CheckDefinition{{TTL: time.Second}}},
	}, {
		name: "tagged addresses",
		body: `{"Name":"web","TaggedAddresses":{"lan":{"Address":"10.0.0.1","Port":80}}}`,
		want: ServiceDefinition{Name: "web", TaggedAddresses: map[string]ServiceAddress{"lan": {Address: "10.0.0.1", Port: 80}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got ServiceDefinition
			if err := DecodeJSON([]byte(tt.body), &got, DecodeOptions{}); err != nil {
				t.Fatalf("DecodeJSON: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", dump(got), dump(tt.want))
			}
		})
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		opts    DecodeOptions
		want    string
		wantErr error // matched with errors.Is besides ErrInvalid
	}{
		{name: "string for number", body: `{"Name":"web","Port":"80"}`, want: `Port: expected a number, got string`},
		{name: "bad duration", body: `{"Name":"web","Check":{"Interval":"abc"}}`, want: `Check.Interval: invalid duration "abc"`},
		{name: "duration without unit", body: `{"Name":"web","Check":{"TTL":"10"}}`, want: `Check.TTL: invalid duration "10"`},
		{name: "bool for duration", body: `{"name":"web","checks":[{"ttl":"1s"},{"interval":true}]}`, want: `checks[1].interval: expected a duration, got bool`},
		{name: "fraction for int", body: `{"Name":"web","Port":80.5}`, want: `Port: expected a whole number, got 80.5`},
		{name: "huge int", body: `{"Name":"web","Port":99999999999999999999}`, want: `Port: number 1e+20 out of range`},
		{name: "string for list", body: `{"Name":"web","Tags":"a"}`, want: `Tags: expected a list, got string`},
		{name: "number in string map", body: `{"Name":"web","Meta":{"a":1}}`, want: `Meta.a: expected a string, got number`},
		{name: "string for object", body: `{"Name":"web","Check":"x"}`, want: `Check: expected an object, got string`},
		{name: "number for bool", body: `{"Name":"web","EnableTagOverride":1}`, want: `EnableTagOverride: expected a bool, got number`},
		{name: "list for string", body: `{"Name":["web"]}`, want: `Name: expected a string, got list`},
		{name: "header values must be lists", body: `{"Name":"web","Check":{"Header":{"X":"a"}}}`, want: `Check.Header.X: expected a list, got string`},
		{name: "top level list of numbers", body: `[1]`, want: `[0]: expected an object, got number`},
		{name: "top level string", body: `"web"`, want: `expected an object, got string`},
		{name: "syntax", body: `{"Name":`, want: `syntax error: unexpected EOF`, wantErr: ErrSyntax},
		{name: "empty", body: ``, want: `syntax error: empty body`, wantErr: ErrSyntax},
		{name: "trailing data", body: `{"Name":"web"} {}`, want: `syntax error: data after the JSON value`, wantErr: ErrSyntax},
		{
			name: "unknown field when asked", body: `{"Name":"web","Check":{"TTL":"1s","Shell":"sh"}}`,
			opts: DecodeOptions{ErrorUnused: true}, want: `Check.Shell: unknown field`, wantErr: ErrUnknownField,
		},
		{
			name: "two spellings when strict", body: `{"Name":"web","Check":{"ID":"a","CheckID":"b","TTL":"1s"}}`,
			opts: DecodeOptions{ErrorUnused: true}, want: `Check.ID: same field as "CheckID"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got ServiceDefinition
			err := DecodeJSON([]byte(tt.body), &got, tt.opts)
			if err == nil {
				t.Fatalf("DecodeJSON succeeded: %s", dump(got))
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not match ErrInvalid", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not match %v", err, tt.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FieldError", err)
			}
		})
	}
}

// TestDecodeJSONConsulAPI decodes the bodies Consul's own Go client sends.
func TestDecodeJSONConsulAPI(t *testing.T) {
	reg := &api.AgentServiceRegistration{
		ID:      "web-1",
		Name:    "web",
		Tags:    []string{"v1"},
		Port:    8080,
		Address: "10.1.2.3",
		Meta:    map[string]string{"version": "2"},
		Weights: &api.AgentWeights{Passing: 10, Warning: 1},
		Check: &api.AgentServiceCheck{
			CheckID:                        "web-ttl",
			TTL:                            "15s",
			DeregisterCriticalServiceAfter: "1m",
		},
		Checks: api.AgentServiceChecks{{
			Name:     "script",
			Args:     []string{"/bin/true"},
			Interval: "5s",
			Timeout:  "1s",
		}, {
			GRPC:       "127.0.0.1:9090/health",
			GRPCUseTLS: true,
			Interval:   "10s",
		}},
	}
	body, err := json.Marshal(reg)
	if err != nil {
		t.Fatal(err)
	}
	var got ServiceDefinition
	if err := DecodeJSON(body, &got, DecodeOptions{}); err != nil {
		t.Fatalf("DecodeJSON(%s): %v", body, err)
	}
	want := ServiceDefinition{
		ID: "web-1", Name: "web", Tags: []string{"v1"}, Port: 8080, Address: "10.1.2.3",
		Meta:    map[string]string{"version": "2"},
		Weights: &Weights{Passing: 10, Warning: 1},
		Check:   &CheckDefinition{ID: "web-ttl", TTL: 15 * time.Second, DeregisterCriticalServiceAfter: time.Minute},
		Checks: []*CheckDefinition{
			{Name: "script", Args: []string{"/bin/true"}, Interval: 5 * time.Second, Timeout: time.Second},
			{GRPC: "127.0.0.1:9090/health", GRPCUseTLS: true, Interval: 10 * time.Second},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body %s\ngot  %s\nwant %s", body, dump(got), dump(want))
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	checkReg := &api.AgentCheckRegistration{
		ID:        "mem",
		Name:      "Memory",
		ServiceID: "web-1",
		AgentServiceCheck: api.AgentServiceCheck{
			HTTP:     "http://localhost:8080/mem",
			Method:   "GET",
			Interval: "30s",
			Status:   "passing",
		},
	}
	body, err = json.Marshal(checkReg)
	if err != nil {
		t.Fatal(err)
	}
	var gotCheck CheckDefinition
	if err := DecodeJSON(body, &gotCheck, DecodeOptions{}); err != nil {
		t.Fatalf("DecodeJSON(%s): %v", body, err)
	}
	wantCheck := CheckDefinition{
		ID: "mem", Name: "Memory", ServiceID: "web-1", HTTP: "http://localhost:8080/mem",
		Method: "GET", Interval: 30 * time.Second, Status: "passing",
	}
	if !reflect.DeepEqual(gotCheck, wantCheck) {
		t.Errorf("body %s\ngot  %s\nwant %s", body, dump(gotCheck), dump(wantCheck))
	}
}

// TestDecodeShapes feeds Decode the shapes HCL v1 produces: blocks wrapped
// in lists, repeated blocks, native integer types.
func TestDecodeShapes(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]any
		want    ServiceDefinition
		wantErr string
	}{{
		name: "block as list of one map",
		in: map[string]any{
			"name":  "web",
			"port":  int64(80),
			"check": []map[string]any{{"ttl": "10s"}},
		},
		want: ServiceDefinition{Name: "web", Port: 80, Check: &CheckDefinition{TTL: 10 * time.Second}},
	}, {
		name: "repeated blocks into a list",
		in: map[string]any{
			"name":   "web",
			"checks": []map[string]any{{"ttl": "1s"}, {"tcp": "a:1", "interval": "2s"}},
		},
		want: ServiceDefinition{Name: "web", Checks: []*CheckDefinition{{TTL: time.Second}, {TCP: "a:1", Interval: 2 * time.Second}}},
	}, {
		name: "repeated blocks into a map merge",
		in: map[string]any{
			"name": "web",
			"meta": []map[string]any{{"a": "1", "b": "1"}, {"b": "2"}},
		},
		want: ServiceDefinition{Name: "web", Meta: map[string]string{"a": "1", "b": "2"}},
	}, {
		name: "empty list for a struct is unset",
		in:   map[string]any{"name": "web", "check": []any{}},
		want: ServiceDefinition{Name: "web"},
	}, {
		name:    "two blocks for one struct",
		in:      map[string]any{"name": "web", "check": []any{map[string]any{}, map[string]any{}}},
		wantErr: "check: expected one block, got 2",
	}, {
		name:    "list element of the wrong kind",
		in:      map[string]any{"name": "web", "check": []any{"x"}},
		wantErr: "check[0]: expected an object, got string",
	}, {
		name:    "negative number for int is fine, validation rejects it",
		in:      map[string]any{"name": "web", "port": -1},
		want:    ServiceDefinition{Name: "web", Port: -1},
		wantErr: "",
	}, {
		name:    "uint too large",
		in:      map[string]any{"name": "web", "port": uint64(1 << 63)},
		wantErr: "port: number 9223372036854775808 out of range",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got ServiceDefinition
			err := Decode(tt.in, &got, DecodeOptions{ErrorUnused: true})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", dump(got), dump(tt.want))
			}
		})
	}
}

func TestDecodeDoesNotModifyInput(t *testing.T) {
	in := map[string]any{"name": "web", "check": []any{map[string]any{"check_id": "a", "ttl": "1s"}}}
	before := dump(in)
	var got ServiceDefinition
	if err := Decode(in, &got, DecodeOptions{}); err != nil {
		t.Fatal(err)
	}
	if after := dump(in); after != before {
		t.Errorf("input changed:\n%s\n%s", before, after)
	}
}

func TestDecodeNeedsPointer(t *testing.T) {
	for _, out := range []any{ServiceDefinition{}, (*ServiceDefinition)(nil), nil} {
		err := Decode(map[string]any{"name": "web"}, out, DecodeOptions{})
		if err == nil {
			t.Errorf("Decode into %T succeeded", out)
		}
		if errors.Is(err, ErrInvalid) {
			t.Errorf("Decode into %T: %v is a programming error, not bad input", out, err)
		}
	}
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"DeregisterCriticalServiceAfter": "deregister_critical_service_after",
		"GRPCUseTLS":                     "grpc_use_tls",
		"TTL":                            "ttl",
		"ServiceID":                      "service_id",
		"Name":                           "name",
		"node_meta":                      "node_meta",
		"HTTP":                           "http",
		"TLSSkipVerify":                  "tls_skip_verify",
		"Args[0]":                        "args[0]",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

// dump renders a value for failure messages, following pointers.
func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
