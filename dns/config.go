package dns

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxTTL is the largest TTL RFC 2181 allows (2^31 - 1 seconds).
const maxTTL = math.MaxInt32 * time.Second

// Config configures a Server. Start from DefaultConfig: the zero value is
// not valid (Domain and Datacenter are required).
type Config struct {
	// Domain is the zone the server is authoritative for, "consul." by
	// default. It is matched case-insensitively; a trailing dot is optional.
	Domain string
	// Datacenter is the local datacenter, used when a name carries no
	// datacenter label. "dc1" by default.
	Datacenter string
	// ServiceTTL is the TTL of service records (and of the address records
	// that go with them). Whole seconds; 0 means "do not cache".
	ServiceTTL time.Duration
	// NodeTTL is the TTL of node records. Whole seconds; 0 means "do not
	// cache".
	NodeTTL time.Duration
	// OnlyPassing leaves instances with a warning check out of answers;
	// critical ones are always left out.
	OnlyPassing bool
	// ARecordLimit caps the number of records in a service answer, over
	// UDP and TCP alike; 0 means no limit. The cap applies after shuffling,
	// so each answer holds a random subset. UDP answers are further bounded
	// by the message size.
	ARecordLimit int
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns Consul's defaults: domain "consul.", datacenter
// "dc1", 5 s TTLs, warning instances included, no record limit.
func DefaultConfig() Config {
	return Config{
		Domain:     "consul.",
		Datacenter: "dc1",
		ServiceTTL: 5 * time.Second,
		NodeTTL:    5 * time.Second,
	}
}

// Validate reports the first problem with c, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Domain == "" {
		return fmt.Errorf("%w: domain is empty", ErrInvalidConfig)
	}
	if n, ok := dns.IsDomainName(c.Domain); !ok || n == 0 || !validHostname(c.Domain) {
		return fmt.Errorf("%w: domain %q is not a DNS name", ErrInvalidConfig, c.Domain)
	}
	if !validLabel(c.Datacenter) {
		return fmt.Errorf("%w: datacenter %q is not a DNS label", ErrInvalidConfig, c.Datacenter)
	}
	for _, ttl := range []struct {
		name string
		v    time.Duration
	}{{"service_ttl", c.ServiceTTL}, {"node_ttl", c.NodeTTL}} {
		if ttl.v < 0 || ttl.v > maxTTL {
			return fmt.Errorf("%w: %s %v out of range [0, %v]", ErrInvalidConfig, ttl.name, ttl.v, maxTTL)
		}
	}
	if c.ARecordLimit < 0 {
		return fmt.Errorf("%w: a_record_limit %d is negative", ErrInvalidConfig, c.ARecordLimit)
	}
	return nil
}

// validLabel reports whether s is a DNS label made of letters, digits,
// hyphens and underscores: what we are willing to put in names we build.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// validHostname reports whether s (with or without the final dot) is a
// name of validLabel labels that fits the 255-octet wire limit.
func validHostname(s string) bool {
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for {
		label, rest, more := strings.Cut(s, ".")
		if !validLabel(label) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}
