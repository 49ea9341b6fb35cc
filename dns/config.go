package dns

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
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
	// AltDomain is an optional second zone the server is authoritative
	// for, with the same names as Domain. An answer to a question under
	// AltDomain builds its names (SRV and PTR targets, NS and SOA) under
	// AltDomain. Validated like Domain; it must differ from it. Names under
	// both (one zone inside the other) belong to the longer zone.
	AltDomain string
	// Datacenter is the local datacenter, used when a name carries no
	// datacenter label. "dc1" by default.
	Datacenter string
	// ServiceTTL is the TTL of service records (and of the address records
	// that go with them). Whole seconds; 0 means "do not cache".
	ServiceTTL time.Duration
	// ServiceTTLs overrides ServiceTTL per service, for its records, their
	// additional records and the PTR records naming it. A key is a
	// service name, or a prefix ending in "*" ("web*"); "*" alone matches
	// every service. An exact key wins, else the longest matching prefix,
	// else ServiceTTL. Keys match case-insensitively, so two keys
	// differing only in case are invalid. Whole seconds, like ServiceTTL.
	ServiceTTLs map[string]time.Duration
	// NodeTTL is the TTL of node records, of the PTR records naming nodes,
	// and of NS records and their glue. Whole seconds; 0 means "do not
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
	// UDPAnswerLimit caps the number of records in a service answer over
	// UDP only; 0 means no limit beyond the message size. Records left out
	// set TC like those that do not fit, unless NoTruncateFlag.
	UDPAnswerLimit int
	// NoTruncateFlag leaves TC clear on UDP answers that had to drop
	// records: the client takes the partial answer instead of retrying
	// over TCP. This is Consul's default (enable_truncate = false); ours
	// sets TC.
	NoTruncateFlag bool
	// Recursors are the "ip:port" addresses of the DNS servers that
	// questions outside Domain and AltDomain, and reverse lookups finding
	// nothing, are forwarded to, tried in order. None: such questions are
	// REFUSED (reverse lookups get NXDOMAIN).
	Recursors []string
	// RecursorTimeout bounds each attempt at one recursor (a UDP answer
	// that comes back truncated gets a second such attempt over TCP).
	// Must be positive when Recursors are set; 2 s by default.
	RecursorTimeout time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Observe, when set, hears of every query answered through ServeDNS:
	// its type, the answer's rcode and how long answering took (for
	// metrics). It runs on the serving goroutine, so it must be quick.
	Observe func(qtype uint16, rcode int, took time.Duration)
}

// DefaultConfig returns Consul's defaults: domain "consul.", datacenter
// "dc1", 5 s TTLs, warning instances included, no record limit, no
// recursors, a 2 s recursor timeout.
func DefaultConfig() Config {
	return Config{
		Domain:          "consul.",
		Datacenter:      "dc1",
		ServiceTTL:      5 * time.Second,
		NodeTTL:         5 * time.Second,
		RecursorTimeout: 2 * time.Second,
	}
}

// Validate reports the first problem with c, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Domain == "" {
		return fmt.Errorf("%w: domain is empty", ErrInvalidConfig)
	}
	if !validDomain(c.Domain) {
		return fmt.Errorf("%w: domain %q is not a DNS name", ErrInvalidConfig, c.Domain)
	}
	if c.AltDomain != "" {
		if !validDomain(c.AltDomain) {
			return fmt.Errorf("%w: alt_domain %q is not a DNS name", ErrInvalidConfig, c.AltDomain)
		}
		if dns.CanonicalName(c.AltDomain) == dns.CanonicalName(c.Domain) {
			return fmt.Errorf("%w: alt_domain %q is the domain", ErrInvalidConfig, c.AltDomain)
		}
	}
	if !validLabel(c.Datacenter) {
		return fmt.Errorf("%w: datacenter %q is not a DNS label", ErrInvalidConfig, c.Datacenter)
	}
	for _, ttl := range []struct {
		name string
		v    time.Duration
	}{{"service_ttl", c.ServiceTTL}, {"node_ttl", c.NodeTTL}} {
		if err := checkTTL(ttl.name, ttl.v); err != nil {
			return err
		}
	}
	if err := validateServiceTTLs(c.ServiceTTLs); err != nil {
		return err
	}
	if c.UDPAnswerLimit < 0 {
		return fmt.Errorf("%w: udp_answer_limit %d is negative", ErrInvalidConfig, c.UDPAnswerLimit)
	}
	if c.ARecordLimit < 0 {
		return fmt.Errorf("%w: a_record_limit %d is negative", ErrInvalidConfig, c.ARecordLimit)
	}
	for _, r := range c.Recursors {
		ap, err := netip.ParseAddrPort(r)
		if err != nil {
			return fmt.Errorf("%w: recursor %q is not ip:port: %v", ErrInvalidConfig, r, err)
		}
		if ap.Port() == 0 {
			return fmt.Errorf("%w: recursor %q has port 0", ErrInvalidConfig, r)
		}
	}
	if c.RecursorTimeout < 0 || (len(c.Recursors) > 0 && c.RecursorTimeout == 0) {
		return fmt.Errorf("%w: recursor_timeout %v must be positive", ErrInvalidConfig, c.RecursorTimeout)
	}
	return nil
}

// checkTTL checks that a TTL fits the range DNS allows.
func checkTTL(name string, v time.Duration) error {
	if v < 0 || v > maxTTL {
		return fmt.Errorf("%w: %s %v out of range [0, %v]", ErrInvalidConfig, name, v, maxTTL)
	}
	return nil
}

// validateServiceTTLs checks the keys and TTLs of Config.ServiceTTLs, in
// key order so that the error is the same every time.
func validateServiceTTLs(ttls map[string]time.Duration) error {
	keys := make([]string, 0, len(ttls))
	for k := range ttls {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := make(map[string]string, len(keys))
	for _, k := range keys {
		if k == "" {
			return fmt.Errorf("%w: service_ttl key is empty", ErrInvalidConfig)
		}
		if i := strings.IndexByte(k, '*'); i >= 0 && i != len(k)-1 {
			return fmt.Errorf("%w: service_ttl key %q: '*' must be the last character", ErrInvalidConfig, k)
		}
		lower := strings.ToLower(k)
		if other, dup := seen[lower]; dup {
			return fmt.Errorf("%w: service_ttl keys %q and %q differ only in case", ErrInvalidConfig, other, k)
		}
		seen[lower] = k
		if err := checkTTL(fmt.Sprintf("service_ttl[%q]", k), ttls[k]); err != nil {
			return err
		}
	}
	return nil
}

// validDomain reports whether s (final dot optional) is a name we can
// serve a zone under: not the root, made of validLabel labels.
func validDomain(s string) bool {
	n, ok := dns.IsDomainName(s)
	return ok && n > 0 && validHostname(s)
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
