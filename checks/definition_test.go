package checks

import (
	"errors"
	"testing"
	"time"
)

func TestDefinitionKind(t *testing.T) {
	for _, tc := range []struct {
		def  Definition
		want string
	}{
		{Definition{}, ""},
		{Definition{TTL: time.Second}, KindTTL},
		{Definition{HTTP: "http://x"}, KindHTTP},
		{Definition{TCP: "x:1"}, KindTCP},
		{Definition{Args: []string{"true"}}, KindScript},
		{Definition{GRPC: "x:1"}, KindGRPC},
		{Definition{AliasService: "web"}, KindAlias},
		{Definition{AliasNode: "n1"}, ""},
	} {
		if got := tc.def.Kind(); got != tc.want {
			t.Errorf("%+v: Kind() = %q, want %q", tc.def, got, tc.want)
		}
	}
}

func TestDefinitionValidate(t *testing.T) {
	ok := func(mod func(*Definition)) Definition {
		d := Definition{ID: "c", HTTP: "http://127.0.0.1:8080/health", Interval: time.Second}
		if mod != nil {
			mod(&d)
		}
		return d
	}
	for _, tc := range []struct {
		name      string
		def       Definition
		wantField string // "" = valid
	}{
		{"http", ok(nil), ""},
		{"https with everything", ok(func(d *Definition) {
			d.HTTP, d.Method, d.Header, d.Body = "https://x/h", "POST", map[string][]string{"X-A": {"1"}}, "b"
			d.Timeout, d.FailuresBeforeCritical, d.SuccessBeforePassing = time.Second, 3, 2
			d.FlapThreshold, d.FlapWindow, d.OutputMaxSize = 5, time.Minute, 100
		}), ""},
		{"tcp", Definition{ID: "c", TCP: "db:5432", Interval: time.Second}, ""},
		{"tcp ipv6", Definition{ID: "c", TCP: "[::1]:5432", Interval: time.Second}, ""},
		{"script", Definition{ID: "c", Args: []string{"/bin/true"}, Interval: time.Second}, ""},
		{"grpc", Definition{ID: "c", GRPC: "127.0.0.1:9000/svc.v1", Interval: time.Second}, ""},
		{"ttl", Definition{ID: "c", TTL: time.Second}, ""},
		{"alias", Definition{ID: "c", AliasService: "web-1", AliasNode: "n2"}, ""},

		{"no ID", ok(func(d *Definition) { d.ID = "" }), "ID"},
		{"no kind", Definition{ID: "c", Interval: time.Second}, "Kind"},
		{"two kinds", ok(func(d *Definition) { d.TCP = "x:1" }), "TCP"},
		{"ttl and script", Definition{ID: "c", TTL: time.Second, Args: []string{"x"}}, "Args"},
		{"no interval", ok(func(d *Definition) { d.Interval = 0 }), "Interval"},
		{"negative interval", Definition{ID: "c", TCP: "x:1", Interval: -1}, "Interval"},
		{"ttl negative interval", Definition{ID: "c", TTL: time.Second, Interval: -1}, "Interval"},
		{"negative ttl", Definition{ID: "c", TTL: -time.Second}, "TTL"},
		{"negative timeout", ok(func(d *Definition) { d.Timeout = -1 }), "Timeout"},
		{"bad scheme", ok(func(d *Definition) { d.HTTP = "ftp://x/" }), "HTTP"},
		{"no host", ok(func(d *Definition) { d.HTTP = "http:///x" }), "HTTP"},
		{"bad URL", ok(func(d *Definition) { d.HTTP = "http://x y/%zz" }), "HTTP"},
		{"bad method", ok(func(d *Definition) { d.Method = "GET /" }), "Method"},
		{"bad header", ok(func(d *Definition) { d.Header = map[string][]string{"X A": {"1"}} }), "Header"},
		{"tcp no port", Definition{ID: "c", TCP: "db", Interval: time.Second}, "TCP"},
		{"tcp no host", Definition{ID: "c", TCP: ":80", Interval: time.Second}, "TCP"},
		{"grpc no port", Definition{ID: "c", GRPC: "db/svc", Interval: time.Second}, "GRPC"},
		{"script empty program", Definition{ID: "c", Args: []string{""}, Interval: time.Second}, "Args"},
		{"alias node alone", Definition{ID: "c", TTL: time.Second, AliasNode: "n"}, "AliasNode"},
		{"negative failures", ok(func(d *Definition) { d.FailuresBeforeCritical = -1 }), "FailuresBeforeCritical"},
		{"negative successes", ok(func(d *Definition) { d.SuccessBeforePassing = -1 }), "SuccessBeforePassing"},
		{"negative flap threshold", ok(func(d *Definition) { d.FlapThreshold = -1 }), "FlapThreshold"},
		{"flap without window", ok(func(d *Definition) { d.FlapThreshold = 3 }), "FlapWindow"},
		{"negative output size", ok(func(d *Definition) { d.OutputMaxSize = -1 }), "OutputMaxSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.def.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want a FieldError on %s", err, tc.wantField)
			}
			if want := tc.wantField + ": "; err.Error()[:len(want)] != want {
				t.Fatalf("message %q does not start with the field", err)
			}
		})
	}
}

func TestDefinitionDefaults(t *testing.T) {
	args := []string{"a", "b"}
	hdr := map[string][]string{"X": {"1"}}
	d := Definition{Args: args, Header: hdr}.withDefaults()
	if d.Method != "GET" || d.Timeout != DefaultTimeout || d.FailuresBeforeCritical != 2 ||
		d.SuccessBeforePassing != 1 || d.OutputMaxSize != 4096 || d.FlapThreshold != 0 {
		t.Fatalf("defaults: %+v", d)
	}
	args[0], hdr["X"][0] = "changed", "changed"
	if d.Args[0] != "a" || d.Header["X"][0] != "1" {
		t.Fatal("the runner's copy shares the caller's slices")
	}
}
