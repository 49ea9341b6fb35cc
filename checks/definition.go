package checks

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Check kinds, as returned by Definition.Kind.
const (
	KindTTL    = "ttl"
	KindHTTP   = "http"
	KindTCP    = "tcp"
	KindScript = "script"
	KindGRPC   = "grpc"
	KindAlias  = "alias"
)

// Defaults that apply where a Definition leaves a field zero.
const (
	// DefaultTimeout bounds one probe of an HTTP, TCP, script or gRPC check.
	DefaultTimeout = 10 * time.Second
	// DefaultFailuresBeforeCritical is how many consecutive failed runs turn
	// a check critical.
	DefaultFailuresBeforeCritical = 2
	// DefaultSuccessBeforePassing is how many consecutive passing runs turn
	// a check passing.
	DefaultSuccessBeforePassing = 1
	// DefaultOutputMaxSize bounds the output kept from one run, in bytes.
	DefaultOutputMaxSize = 4096
)

// Definition is one check as the Runner needs it; the agent maps its own
// configuration type onto it. Exactly one kind must be set: HTTP, TCP,
// Args (script), GRPC, TTL or AliasService. The zero value of every other
// field means its default.
type Definition struct {
	// ID names the check; it is what the Notifier receives.
	ID string

	// HTTP is the URL an HTTP check requests, with Method (default GET),
	// Header, Body, and TLSSkipVerify for https URLs (also used by gRPC
	// checks with GRPCUseTLS). A "Host" header sets the request's host.
	HTTP          string
	Method        string
	Header        map[string][]string
	Body          string
	TLSSkipVerify bool

	// TCP is the "host:port" a TCP check connects to.
	TCP string

	// Args is a script check's argv, run without a shell.
	Args []string

	// GRPC is "host:port" or "host:port/service" for a gRPC check; the
	// service name (empty: the server as a whole) goes in the health
	// request. GRPCUseTLS selects TLS instead of plaintext.
	GRPC       string
	GRPCUseTLS bool

	// TTL is the time a TTL check may go without a heartbeat.
	TTL time.Duration

	// AliasService and AliasNode name the service instance an alias check
	// mirrors; AliasNode "" is the agent's own node.
	AliasService string
	AliasNode    string

	// Interval is the time between the end of one run of an active check
	// (HTTP, TCP, script, gRPC) and the start of the next; it must be
	// positive for those kinds and is ignored by the others. Timeout bounds
	// one run; 0 means DefaultTimeout.
	Interval time.Duration
	Timeout  time.Duration

	// FailuresBeforeCritical (0: DefaultFailuresBeforeCritical) and
	// SuccessBeforePassing (0: DefaultSuccessBeforePassing) are the
	// consecutive results an active check needs before it turns critical
	// or passing. TTL and alias checks report every result at once.
	FailuresBeforeCritical int
	SuccessBeforePassing   int

	// FlapThreshold, when positive, enables flap damping: a check whose
	// status changed more than FlapThreshold times within the last
	// FlapWindow (then required) is held critical until it calms down.
	FlapThreshold int
	FlapWindow    time.Duration

	// OutputMaxSize bounds the output kept from one run, in bytes; 0 means
	// DefaultOutputMaxSize.
	OutputMaxSize int
}

// Kind reports which kind of check d is: one of the Kind constants, or ""
// if d sets none. When d sets several, Kind reports the first in the order
// TTL, HTTP, TCP, script, gRPC, alias; Validate refuses such a d.
func (d *Definition) Kind() string {
	switch {
	case d.TTL != 0:
		return KindTTL
	case d.HTTP != "":
		return KindHTTP
	case d.TCP != "":
		return KindTCP
	case len(d.Args) > 0:
		return KindScript
	case d.GRPC != "":
		return KindGRPC
	case d.AliasService != "":
		return KindAlias
	}
	return ""
}

// active reports whether the check runs probes on an interval.
func active(kind string) bool {
	return kind == KindHTTP || kind == KindTCP || kind == KindScript || kind == KindGRPC
}

// Validate checks that d sets exactly one kind and that its other fields
// are sane. The error is a *FieldError naming the offending field; it
// wraps ErrInvalid.
func (d *Definition) Validate() error {
	if d.ID == "" {
		return fieldErr("ID", "required")
	}
	var kinds []string
	for _, k := range []struct {
		set   bool
		field string
	}{
		{d.TTL != 0, "TTL"},
		{d.HTTP != "", "HTTP"},
		{d.TCP != "", "TCP"},
		{len(d.Args) > 0, "Args"},
		{d.GRPC != "", "GRPC"},
		{d.AliasService != "", "AliasService"},
	} {
		if k.set {
			kinds = append(kinds, k.field)
		}
	}
	switch len(kinds) {
	case 0:
		return fieldErr("Kind", "one of HTTP, TCP, Args, GRPC, TTL or AliasService is required")
	case 1:
	default:
		return fieldErr(kinds[1], "only one kind per check; "+strings.Join(kinds, " and ")+" are set")
	}
	kind := d.Kind()

	switch kind {
	case KindTTL:
		if d.TTL < 0 {
			return fieldErr("TTL", "must be positive")
		}
	case KindHTTP:
		u, err := url.Parse(d.HTTP)
		if err != nil {
			return fieldErr("HTTP", "invalid URL: "+err.Error())
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fieldErr("HTTP", "scheme must be http or https")
		}
		if u.Host == "" {
			return fieldErr("HTTP", "host required")
		}
		if d.Method != "" && !validToken(d.Method) {
			return fieldErr("Method", "invalid HTTP method")
		}
		for name := range d.Header {
			if !validToken(name) {
				return fieldErr("Header", "invalid header name "+strconv.Quote(name))
			}
		}
	case KindTCP:
		if err := validHostPort(d.TCP); err != nil {
			return fieldErr("TCP", err.Error())
		}
	case KindScript:
		if d.Args[0] == "" {
			return fieldErr("Args", "program name must not be empty")
		}
	case KindGRPC:
		addr, _, _ := strings.Cut(d.GRPC, "/")
		if err := validHostPort(addr); err != nil {
			return fieldErr("GRPC", err.Error())
		}
	}
	if d.AliasNode != "" && kind != KindAlias {
		return fieldErr("AliasNode", "requires AliasService")
	}

	if active(kind) {
		if d.Interval <= 0 {
			return fieldErr("Interval", "must be positive")
		}
	} else if d.Interval < 0 {
		return fieldErr("Interval", "must not be negative")
	}
	if d.Timeout < 0 {
		return fieldErr("Timeout", "must not be negative")
	}
	if d.FailuresBeforeCritical < 0 {
		return fieldErr("FailuresBeforeCritical", "must not be negative")
	}
	if d.SuccessBeforePassing < 0 {
		return fieldErr("SuccessBeforePassing", "must not be negative")
	}
	if d.FlapThreshold < 0 {
		return fieldErr("FlapThreshold", "must not be negative")
	}
	if d.FlapWindow < 0 {
		return fieldErr("FlapWindow", "must not be negative")
	}
	if d.FlapThreshold > 0 && d.FlapWindow == 0 {
		return fieldErr("FlapWindow", "required when FlapThreshold is set")
	}
	if d.OutputMaxSize < 0 {
		return fieldErr("OutputMaxSize", "must not be negative")
	}
	return nil
}

// withDefaults returns a copy of d with its zero fields defaulted and its
// slices and maps copied, so the caller may reuse its own.
func (d Definition) withDefaults() Definition {
	if d.Method == "" {
		d.Method = "GET"
	}
	if d.Timeout == 0 {
		d.Timeout = DefaultTimeout
	}
	if d.FailuresBeforeCritical == 0 {
		d.FailuresBeforeCritical = DefaultFailuresBeforeCritical
	}
	if d.SuccessBeforePassing == 0 {
		d.SuccessBeforePassing = DefaultSuccessBeforePassing
	}
	if d.OutputMaxSize == 0 {
		d.OutputMaxSize = DefaultOutputMaxSize
	}
	d.Args = append([]string(nil), d.Args...)
	if d.Header != nil {
		h := make(map[string][]string, len(d.Header))
		for k, v := range d.Header {
			h[k] = append([]string(nil), v...)
		}
		d.Header = h
	}
	return d
}

func validHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("host required")
	}
	if port == "" {
		return errors.New("port required")
	}
	return nil
}

// validToken reports whether s is an RFC 7230 token (a method or header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
