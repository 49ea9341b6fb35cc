package config

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/catalog"
)

// ServiceDefinition is one service instance as a config file's service block
// or the body of PUT /v1/agent/service/register describes it. Field names are
// Consul's; Decode matches them in any case, with or without underscores.
//
// The intended sequence is Decode, Validate, then Normalize: Validate checks
// the definition as given and changes nothing; Normalize fills in defaults.
type ServiceDefinition struct {
	// ID is unique per node; Normalize defaults it to Name.
	ID   string
	Name string
	Tags []string
	// Address is the instance's own address; empty means the node's.
	Address string
	// Port is 0 (none) to 65535.
	Port int
	Meta map[string]string
	// Weights are the DNS SRV weights by health; Normalize defaults them
	// to {Passing: 1, Warning: 1}, as Consul does.
	Weights           *Weights
	EnableTagOverride bool
	// DNS are meshd's DNS options for the instance (`dns { single = true }`).
	DNS *ServiceDNS
	// TaggedAddresses are accepted so Consul definitions decode; meshd only
	// stores them.
	TaggedAddresses map[string]ServiceAddress
	// Check and Checks are the instance's health checks. A check with no
	// field set is ignored (clients send "Check": {}), as in Consul.
	Check  *CheckDefinition
	Checks []*CheckDefinition
}

// Weights are the relative weights of a service instance in DNS SRV answers
// and weighted load balancing, by its health.
type Weights struct {
	Passing int
	Warning int
}

// Catalog is the weights as the catalog stores them; the catalog's
// defaults for nil.
func (w *Weights) Catalog() catalog.Weights {
	if w == nil {
		return catalog.DefaultWeights
	}
	return catalog.Weights{Passing: w.Passing, Warning: w.Warning}
}

// ServiceDNS are a service's DNS options, a meshd extension.
type ServiceDNS struct {
	// Single makes DNS answer the service's names with one record chosen
	// by weight (server-side balancing) instead of the shuffled list.
	Single bool
}

// Catalog is the block as the catalog stores it; the zero value for nil.
func (d *ServiceDNS) Catalog() catalog.ServiceDNS {
	if d == nil {
		return catalog.ServiceDNS{}
	}
	return catalog.ServiceDNS{Single: d.Single}
}

// ServiceAddress is an address and port under a tag ("lan", "wan").
type ServiceAddress struct {
	Address string
	Port    int
}

// CheckDefinition is one health check, in a service definition, a config
// file's check block or the body of PUT /v1/agent/check/register.
//
// A check has exactly one kind, chosen by which field is set: TTL, HTTP, TCP,
// GRPC, Args (a script, which the agent runs only when script checks are
// enabled) or AliasService/AliasNode. Zero durations and counts mean "not
// set": FailuresBeforeCritical 0 leaves the choice to the checks package
// (whose default is 2).
type CheckDefinition struct {
	// ID is unique per node. Decode also accepts it as CheckID. For a
	// standalone check Normalize defaults it to Name; for a service's check
	// to "service:<service ID>" (":<n>" appended when it has several).
	ID        string `alias:"CheckID"`
	Name      string
	Notes     string
	ServiceID string
	// Status is the initial status: passing, warning or critical. Empty
	// means critical.
	Status string

	TTL time.Duration

	HTTP          string
	Header        map[string][]string
	Method        string
	Body          string
	TLSSkipVerify bool

	TCP string

	GRPC       string
	GRPCUseTLS bool

	// Args is a script's argv; Decode also accepts it as ScriptArgs.
	Args []string `alias:"ScriptArgs"`

	AliasService string
	AliasNode    string

	Interval                       time.Duration
	Timeout                        time.Duration
	DeregisterCriticalServiceAfter time.Duration
	FailuresBeforeCritical         int
	SuccessBeforePassing           int

	// FlapThreshold and FlapWindow damp a flapping check: once its status
	// has changed more than FlapThreshold times within FlapWindow it is
	// held critical until it settles. Zero turns damping off. Not in
	// Consul.
	FlapThreshold int
	FlapWindow    time.Duration
}

// MinCheckPeriod is the shortest TTL and interval a check may have: below
// it a check costs more than it tells.
const MinCheckPeriod = time.Second

// Check types as returned by CheckDefinition.Type, spelled as Consul spells
// them in the Type field of its check objects.
const (
	CheckTypeTTL    = "ttl"
	CheckTypeHTTP   = "http"
	CheckTypeTCP    = "tcp"
	CheckTypeGRPC   = "grpc"
	CheckTypeScript = "script"
	CheckTypeAlias  = "alias"
)

// Check statuses accepted in CheckDefinition.Status.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
)

// Type returns the check's kind (CheckTypeTTL...), or "" if no kind is set.
// If several are set (Validate rejects that) the first in the order TTL,
// HTTP, TCP, GRPC, script, alias wins.
func (c *CheckDefinition) Type() string {
	kinds := c.kinds()
	if len(kinds) == 0 {
		return ""
	}
	return kinds[0].typ
}

type checkKind struct{ field, typ string }

func (c *CheckDefinition) kinds() []checkKind {
	var k []checkKind
	if c.TTL != 0 {
		k = append(k, checkKind{"TTL", CheckTypeTTL})
	}
	if c.HTTP != "" {
		k = append(k, checkKind{"HTTP", CheckTypeHTTP})
	}
	if c.TCP != "" {
		k = append(k, checkKind{"TCP", CheckTypeTCP})
	}
	if c.GRPC != "" {
		k = append(k, checkKind{"GRPC", CheckTypeGRPC})
	}
	if len(c.Args) > 0 {
		k = append(k, checkKind{"Args", CheckTypeScript})
	}
	if c.AliasService != "" || c.AliasNode != "" {
		k = append(k, checkKind{"AliasService", CheckTypeAlias})
	}
	return k
}

// isEmpty reports whether no field is set: such a check is ignored.
func (c *CheckDefinition) isEmpty() bool {
	return reflect.ValueOf(c).Elem().IsZero()
}

// Validate checks a standalone check (a config file's check block, the body
// of PUT /v1/agent/check/register): everything a service's check needs, and a
// Name. It changes nothing. The error is a *FieldError naming the field.
func (c *CheckDefinition) Validate() error {
	return c.validate("", true)
}

// Normalize fills in a standalone check's defaults: ID defaults to Name.
func (c *CheckDefinition) Normalize() {
	if c.ID == "" {
		c.ID = c.Name
	}
}

// validate checks c; prefix is its path ("Checks[1]"), standalone requires a
// name (a service's checks get one from Normalize).
func (c *CheckDefinition) validate(prefix string, standalone bool) error {
	at := func(name string) string { return joinPath(prefix, name) }
	if standalone && strings.TrimSpace(c.Name) == "" {
		return fieldErr(at("Name"), "missing check name")
	}
	if c.ID != "" && strings.TrimSpace(c.ID) == "" {
		return fieldErr(at("ID"), "must not be blank")
	}
	for _, f := range []struct{ name, v string }{{"ID", c.ID}, {"ServiceID", c.ServiceID}} {
		if hasControl(f.v) {
			return fieldErr(at(f.name), "must not contain control characters")
		}
	}
	if standalone && c.ID == "" && hasControl(c.Name) {
		return fieldErr(at("Name"), "must not contain control characters")
	}
	kinds := c.kinds()
	switch {
	case len(kinds) == 0:
		msg := "must set one of TTL, HTTP, TCP, GRPC, Args or AliasService"
		if prefix == "" {
			msg = "check " + msg
		}
		return fieldErr(prefix, msg)
	case len(kinds) > 1:
		return fieldErr(at(kinds[1].field), fmt.Sprintf("cannot be combined with %s: a check has exactly one kind", kinds[0].field))
	}
	kind := kinds[0]
	switch kind.typ {
	case CheckTypeTTL:
		if c.TTL < MinCheckPeriod {
			return fieldErr(at("TTL"), fmt.Sprintf("must be at least %v, got %v", MinCheckPeriod, c.TTL))
		}
	case CheckTypeHTTP:
		u, err := url.Parse(c.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fieldErr(at("HTTP"), fmt.Sprintf("must be an http or https URL, got %q", c.HTTP))
		}
	case CheckTypeTCP:
		if !validHostPort(c.TCP) {
			return fieldErr(at("TCP"), fmt.Sprintf("must be host:port, got %q", c.TCP))
		}
	case CheckTypeGRPC:
		// host:port, optionally followed by /service.
		hostPort, _, _ := strings.Cut(c.GRPC, "/")
		if !validHostPort(hostPort) {
			return fieldErr(at("GRPC"), fmt.Sprintf("must be host:port or host:port/service, got %q", c.GRPC))
		}
	case CheckTypeScript:
		if strings.TrimSpace(c.Args[0]) == "" {
			return fieldErr(at("Args[0]"), "empty command")
		}
	}
	switch kind.typ {
	case CheckTypeHTTP, CheckTypeTCP, CheckTypeGRPC, CheckTypeScript:
		if c.Interval == 0 {
			return fieldErr(at("Interval"), "required for "+kind.field+" checks")
		}
		if c.Interval < MinCheckPeriod {
			return fieldErr(at("Interval"), fmt.Sprintf("must be at least %v, got %v", MinCheckPeriod, c.Interval))
		}
	default:
		if c.Interval < 0 {
			return fieldErr(at("Interval"), "must not be negative")
		}
	}
	if c.Timeout < 0 {
		return fieldErr(at("Timeout"), "must not be negative")
	}
	if c.DeregisterCriticalServiceAfter < 0 {
		return fieldErr(at("DeregisterCriticalServiceAfter"), "must not be negative")
	}
	switch c.Status {
	case "", StatusPassing, StatusWarning, StatusCritical:
	default:
		return fieldErr(at("Status"), fmt.Sprintf("must be passing, warning or critical, got %q", c.Status))
	}
	if c.FailuresBeforeCritical < 0 {
		return fieldErr(at("FailuresBeforeCritical"), "must not be negative")
	}
	if c.SuccessBeforePassing < 0 {
		return fieldErr(at("SuccessBeforePassing"), "must not be negative")
	}
	if c.FlapThreshold < 0 {
		return fieldErr(at("FlapThreshold"), "must not be negative")
	}
	if c.FlapWindow < 0 {
		return fieldErr(at("FlapWindow"), "must not be negative")
	}
	if c.FlapThreshold > 0 && c.FlapWindow == 0 {
		return fieldErr(at("FlapWindow"), "required when FlapThreshold is set")
	}
	if c.Method != "" && strings.IndexFunc(c.Method, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z')
	}) >= 0 {
		return fieldErr(at("Method"), fmt.Sprintf("invalid HTTP method %q", c.Method))
	}
	for _, name := range sortedMapKeys(c.Header) {
		if strings.TrimSpace(name) == "" {
			return fieldErr(at("Header"), "empty header name")
		}
	}
	return nil
}

// validHostPort reports whether s is host:port with a numeric port.
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n <= 65535
}

// Validate checks a service definition and its checks as given. It changes
// nothing and does not depend on Normalize having run. The error is a
// *FieldError naming the field with its path ("Checks[1].TTL").
func (s *ServiceDefinition) Validate() error {
	if strings.TrimSpace(s.Name) == "" {
		return fieldErr("Name", "missing service name")
	}
	if s.ID != "" && strings.TrimSpace(s.ID) == "" {
		return fieldErr("ID", "must not be blank")
	}
	for _, f := range []struct{ name, v string }{{"Name", s.Name}, {"ID", s.ID}} {
		if hasControl(f.v) {
			return fieldErr(f.name, "must not contain control characters")
		}
	}
	for i, t := range s.Tags {
		if hasControl(t) {
			return fieldErr("Tags["+strconv.Itoa(i)+"]", "must not contain control characters")
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		return fieldErr("Port", "must be between 0 and 65535")
	}
	if s.Weights != nil {
		if s.Weights.Passing < 0 {
			return fieldErr("Weights.Passing", "must not be negative")
		}
		if s.Weights.Warning < 0 {
			return fieldErr("Weights.Warning", "must not be negative")
		}
	}
	if err := validateMeta("Meta", s.Meta); err != nil {
		return err
	}
	for _, tag := range sortedMapKeys(s.TaggedAddresses) {
		if p := s.TaggedAddresses[tag].Port; p < 0 || p > 65535 {
			return fieldErr("TaggedAddresses."+tag+".Port", "must be between 0 and 65535")
		}
	}
	if s.Check != nil && !s.Check.isEmpty() {
		if err := s.Check.validate("Check", false); err != nil {
			return err
		}
	}
	for i, c := range s.Checks {
		if c == nil || c.isEmpty() {
			continue
		}
		if err := c.validate("Checks["+strconv.Itoa(i)+"]", false); err != nil {
			return err
		}
	}
	return nil
}

// Normalize fills in defaults, as Consul's agent does when it adds a service:
// ID from Name, Weights {1, 1}, empty checks dropped, and for each check an
// ID ("service:<id>", or "service:<id>:<n>" when there are several), a Name
// ("Service '<name>' check") and ServiceID. Call it after Validate.
func (s *ServiceDefinition) Normalize() {
	if s.ID == "" {
		s.ID = s.Name
	}
	if s.Weights == nil {
		s.Weights = &Weights{Passing: 1, Warning: 1}
	}
	if s.Check != nil && s.Check.isEmpty() {
		s.Check = nil
	}
	s.Checks = slices.DeleteFunc(s.Checks, func(c *CheckDefinition) bool {
		return c == nil || c.isEmpty()
	})
	if len(s.Checks) == 0 {
		s.Checks = nil
	}
	all := s.AllChecks()
	for i, c := range all {
		if c.ID == "" {
			c.ID = "service:" + s.ID
			if len(all) > 1 {
				c.ID += ":" + strconv.Itoa(i+1)
			}
		}
		if c.Name == "" {
			c.Name = "Service '" + s.Name + "' check"
		}
		c.ServiceID = s.ID
	}
}

// AllChecks returns Check (if set) followed by Checks, skipping nil entries.
// The checks are shared, not copied.
func (s *ServiceDefinition) AllChecks() []*CheckDefinition {
	all := make([]*CheckDefinition, 0, len(s.Checks)+1)
	if s.Check != nil {
		all = append(all, s.Check)
	}
	for _, c := range s.Checks {
		if c != nil {
			all = append(all, c)
		}
	}
	return all
}

// Metadata limits, as Consul's.
const (
	metaMaxPairs       = 64
	metaKeyMaxLength   = 128
	metaValueMaxLength = 512
	metaReservedPrefix = "consul-"
)

// validateMeta applies Consul's rules for service and node metadata: at most
// 64 pairs, keys of letters, digits, '_' and '-' up to 128 bytes and not
// starting with "consul-", values up to 512 bytes.
func validateMeta(path string, meta map[string]string) error {
	if len(meta) > metaMaxPairs {
		return fieldErr(path, fmt.Sprintf("too many entries: %d, at most %d", len(meta), metaMaxPairs))
	}
	for _, k := range sortedMapKeys(meta) {
		at := joinPath(path, k)
		switch {
		case k == "":
			return fieldErr(path, "empty key")
		case len(k) > metaKeyMaxLength:
			return fieldErr(at, fmt.Sprintf("key longer than %d bytes", metaKeyMaxLength))
		case strings.IndexFunc(k, func(r rune) bool { return !isAlnum(r) && r != '_' && r != '-' }) >= 0:
			return fieldErr(at, "key may contain only letters, digits, '_' and '-'")
		case strings.HasPrefix(k, metaReservedPrefix):
			return fieldErr(at, "keys starting with \"consul-\" are reserved")
		case len(meta[k]) > metaValueMaxLength:
			return fieldErr(at, fmt.Sprintf("value longer than %d bytes", metaValueMaxLength))
		}
	}
	return nil
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hasControl reports whether s holds a control character (NUL included),
// which no name, ID or tag may: they are storage keys and DNS labels.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
