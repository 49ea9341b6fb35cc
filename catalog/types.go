package catalog

import (
	"encoding/json"
	"strings"
	"time"
)

// HealthStatus is the state of a check: passing, warning or critical.
type HealthStatus = string

// Check states, spelled as Consul spells them on the wire.
const (
	HealthPassing  HealthStatus = "passing"
	HealthWarning  HealthStatus = "warning"
	HealthCritical HealthStatus = "critical"
	// HealthAny is only a query value: every state.
	HealthAny HealthStatus = "any"
)

// Built-in check IDs.
const (
	// SerfCheckID is the node check driven by gossip.
	SerfCheckID = "serfHealth"
	// NodeMaintCheckID is the node maintenance check.
	NodeMaintCheckID = "_node_maintenance"
	// ServiceMaintPrefix prefixes a service's maintenance check ID.
	ServiceMaintPrefix = "_service_maintenance:"
)

// ValidStatus reports whether s is a check state (not "any").
func ValidStatus(s string) bool {
	return s == HealthPassing || s == HealthWarning || s == HealthCritical
}

// Node is a host in the catalog. Node (the name) is unique per datacenter,
// matched case-insensitively.
type Node struct {
	ID              string            `json:"ID"`
	Node            string            `json:"Node"`
	Address         string            `json:"Address"`
	Datacenter      string            `json:"Datacenter"`
	TaggedAddresses map[string]string `json:"TaggedAddresses"`
	Meta            map[string]string `json:"Meta"`
	CreateIndex     uint64            `json:"CreateIndex"`
	ModifyIndex     uint64            `json:"ModifyIndex"`
}

// Weights steer load balancing between instances: Passing applies while
// the instance is passing, Warning while it is warning.
type Weights struct {
	Passing int `json:"Passing"`
	Warning int `json:"Warning"`
}

// DefaultWeights are the weights of an instance that sets none (Consul's).
var DefaultWeights = Weights{Passing: 1, Warning: 1}

// Service is one instance of a service on a node. ID is unique per node;
// Service (the name) is matched case-insensitively.
type Service struct {
	// Node is the name of the node the instance runs on. It is the storage
	// key, not part of Consul's service object on the wire.
	Node              string            `json:"-"`
	ID                string            `json:"ID"`
	Service           string            `json:"Service"`
	Tags              []string          `json:"Tags"`
	Address           string            `json:"Address"`
	Meta              map[string]string `json:"Meta"`
	Port              int               `json:"Port"`
	Weights           Weights           `json:"Weights"`
	EnableTagOverride bool              `json:"EnableTagOverride"`
	// DNS holds meshd's DNS options for the instance; absent from the JSON
	// when unset, so Consul's clients see the object they know.
	DNS         ServiceDNS `json:"DNS,omitzero"`
	CreateIndex uint64     `json:"CreateIndex"`
	ModifyIndex uint64     `json:"ModifyIndex"`
}

// ServiceDNS are an instance's DNS options (a meshd extension).
type ServiceDNS struct {
	// Single asks DNS to answer questions about the service with one
	// record, picked by weight, instead of the shuffled list: server-side
	// balancing for clients that always take the first record. Set on
	// any healthy instance, it applies to the service's answers.
	Single bool `json:"Single,omitzero"`
}

// HasTag reports whether the instance carries tag, case-insensitively as
// DNS labels are.
func (s *Service) HasTag(tag string) bool {
	for _, t := range s.Tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// CheckDefinition is how a check runs. Durations are JSON strings like
// "10s", as Consul writes them.
type CheckDefinition struct {
	HTTP                           string              `json:"HTTP,omitempty"`
	Header                         map[string][]string `json:"Header,omitempty"`
	Method                         string              `json:"Method,omitempty"`
	Body                           string              `json:"Body,omitempty"`
	TLSSkipVerify                  bool                `json:"TLSSkipVerify,omitempty"`
	TCP                            string              `json:"TCP,omitempty"`
	GRPC                           string              `json:"GRPC,omitempty"`
	Interval                       time.Duration       `json:"-"`
	Timeout                        time.Duration       `json:"-"`
	TTL                            time.Duration       `json:"-"`
	DeregisterCriticalServiceAfter time.Duration       `json:"-"`
}

// MarshalJSON writes durations as Go duration strings, which is what
// Consul's clients parse.
func (d CheckDefinition) MarshalJSON() ([]byte, error) {
	type plain CheckDefinition
	dur := func(v time.Duration) string {
		if v == 0 {
			return ""
		}
		return v.String()
	}
	return json.Marshal(struct {
		plain
		Interval                       string `json:"Interval,omitempty"`
		Timeout                        string `json:"Timeout,omitempty"`
		TTL                            string `json:"TTL,omitempty"`
		DeregisterCriticalServiceAfter string `json:"DeregisterCriticalServiceAfter,omitempty"`
	}{plain(d), dur(d.Interval), dur(d.Timeout), dur(d.TTL), dur(d.DeregisterCriticalServiceAfter)})
}

// Check is a health check on a node (ServiceID empty) or on one of its
// service instances.
type Check struct {
	Node        string          `json:"Node"`
	CheckID     string          `json:"CheckID"`
	Name        string          `json:"Name"`
	Status      HealthStatus    `json:"Status"`
	Notes       string          `json:"Notes"`
	Output      string          `json:"Output"`
	ServiceID   string          `json:"ServiceID"`
	ServiceName string          `json:"ServiceName"`
	ServiceTags []string        `json:"ServiceTags"`
	Type        string          `json:"Type"`
	Definition  CheckDefinition `json:"Definition"`
	CreateIndex uint64          `json:"CreateIndex"`
	ModifyIndex uint64          `json:"ModifyIndex"`
}

// ServiceNode is an instance together with the node it runs on.
type ServiceNode struct {
	Node    *Node
	Service *Service
}

// CheckServiceNode is an instance, its node, and every check that bears on
// its health: the node's own checks and the instance's.
type CheckServiceNode struct {
	Node    *Node    `json:"Node"`
	Service *Service `json:"Service"`
	Checks  []*Check `json:"Checks"`
}

// AggregatedStatus is the worst status among the instance's checks:
// critical beats warning beats passing. An instance with no checks is
// passing.
func (c *CheckServiceNode) AggregatedStatus() HealthStatus {
	return WorstStatus(c.Checks)
}

// WorstStatus is the worst status of checks; passing when there are none.
func WorstStatus(checks []*Check) HealthStatus {
	status := HealthPassing
	for _, chk := range checks {
		switch chk.Status {
		case HealthCritical:
			return HealthCritical
		case HealthWarning:
			status = HealthWarning
		}
	}
	return status
}

// Healthy reports whether the instance may be handed out: no critical
// check, and, when onlyPassing, no warning one either.
func (c *CheckServiceNode) Healthy(onlyPassing bool) bool {
	switch c.AggregatedStatus() {
	case HealthCritical:
		return false
	case HealthWarning:
		return !onlyPassing
	}
	return true
}

// Weight is the instance's load-balancing weight in its current state:
// Weights.Passing, or Weights.Warning while a check warns; 0 when
// critical. Unset weights (both zero) are DefaultWeights, as an instance
// registered without them gets.
func (c *CheckServiceNode) Weight() int {
	w := c.Service.Weights
	if w == (Weights{}) {
		w = DefaultWeights
	}
	switch c.AggregatedStatus() {
	case HealthCritical:
		return 0
	case HealthWarning:
		return max(w.Warning, 0)
	}
	return max(w.Passing, 0)
}

// RegisterRequest writes a node and, optionally, one service instance and
// checks, atomically. It is both the catalog/register body and the Raft
// command the agents' anti-entropy sync sends.
type RegisterRequest struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	Service         *Service
	Checks          []*Check
	// SkipNodeUpdate leaves an existing node's fields alone (an agent
	// syncing one service must not clobber node meta set elsewhere).
	SkipNodeUpdate bool
	WriteRequest
}

// DeregisterRequest removes a check (CheckID), a service instance with its
// checks (ServiceID), or, when both are empty, the node with everything on
// it.
type DeregisterRequest struct {
	Node      string
	ServiceID string
	CheckID   string
	// Datacenter, when another than the receiving server's, makes it
	// forward the request there; the catalog ignores it.
	Datacenter string
	WriteRequest
}

// CheckStatusUpdate changes the status and output of one existing check.
// It is the cheap write a check transition costs.
type CheckStatusUpdate struct {
	Node    string
	CheckID string
	Status  HealthStatus
	Output  string
	WriteRequest
}
