package gossip

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// Role is what an agent is in its datacenter: a server (a Raft voter
// candidate) or a client.
type Role string

// The roles an agent can advertise.
const (
	RoleServer Role = "server"
	RoleClient Role = "client"
)

// Keys of the serf tags a Pool advertises. They are short because every
// member's tags travel in memberlist's node meta, which is capped at
// MaxTagsSize bytes, and in every push/pull of the full member list.
const (
	TagRole       = "role"
	TagDatacenter = "dc"
	TagNodeID     = "id"
	TagServerPort = "port"
	TagExpect     = "expect"
	TagWANPort    = "wan"
	TagBuild      = "build"
	TagFSM        = "fsm"
	TagVersion    = "vsn"
)

// TagsVersion is the value of the "vsn" tag: the version of this tag
// schema, so a later meshd can tell what an older member advertises.
const TagsVersion = "1"

// MaxTagsSize is memberlist's limit on node meta, which holds the encoded
// tags (memberlist.MetaMaxSize).
const MaxTagsSize = memberlist.MetaMaxSize

// tagMagicByte is serf's prefix for msgpack-encoded tags (serf.tagMagicByte).
const tagMagicByte = 255

// Tags is what an agent advertises about itself to its pool. The zero
// value is not valid: Role and Datacenter are required.
type Tags struct {
	// Role is RoleServer or RoleClient.
	Role Role
	// Datacenter is the agent's datacenter: lower-case letters, digits,
	// '-' and '_' (Consul's rule, so it is a valid DNS label).
	Datacenter string
	// NodeID is the agent's stable node ID (a UUID in practice); optional.
	NodeID string
	// ServerPort is the server RPC/Raft port (8300 by default). Required
	// for servers, zero for clients.
	ServerPort int
	// BootstrapExpect is the server's bootstrap_expect setting; zero when
	// it is not bootstrapping by expectation. Always zero for clients.
	BootstrapExpect int
	// WANPort is the WAN gossip port of a server that is in the WAN pool,
	// so the other servers of its datacenter can bring it in (flood
	// join); zero when it has none. Always zero for clients.
	WANPort int
	// Build is the meshd version string; optional.
	Build string
	// FSM is the newest Raft log and snapshot format the server reads
	// (the leader writes a newer format only once every server reads
	// it); zero for clients and for servers of builds before the tag.
	FSM int
}

// Encode returns the serf tag map for t. Empty fields are left out.
func (t Tags) Encode() map[string]string {
	m := map[string]string{
		TagRole:       string(t.Role),
		TagDatacenter: t.Datacenter,
		TagVersion:    TagsVersion,
	}
	if t.NodeID != "" {
		m[TagNodeID] = t.NodeID
	}
	if t.ServerPort != 0 {
		m[TagServerPort] = strconv.Itoa(t.ServerPort)
	}
	if t.BootstrapExpect != 0 {
		m[TagExpect] = strconv.Itoa(t.BootstrapExpect)
	}
	if t.WANPort != 0 {
		m[TagWANPort] = strconv.Itoa(t.WANPort)
	}
	if t.Build != "" {
		m[TagBuild] = t.Build
	}
	if t.FSM != 0 {
		m[TagFSM] = strconv.Itoa(t.FSM)
	}
	return m
}

// EncodedSize is the number of bytes t takes in memberlist's node meta,
// encoded exactly as serf encodes tags (a magic byte and a msgpack map).
func (t Tags) EncodedSize() int {
	return encodedTagsSize(t.Encode())
}

func encodedTagsSize(m map[string]string) int {
	var buf bytes.Buffer
	buf.WriteByte(tagMagicByte)
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(m); err != nil {
		// A map of strings always encodes; serf panics here too.
		panic(fmt.Sprintf("gossip: encode tags: %v", err))
	}
	return buf.Len()
}

// Validate reports whether t can be advertised: known role, a valid
// datacenter name, ports in range and consistent with the role, and an
// encoding that fits MaxTagsSize. Errors wrap ErrInvalidTags or
// ErrTagsTooLarge.
func (t Tags) Validate() error {
	switch t.Role {
	case RoleServer, RoleClient:
	default:
		return fmt.Errorf("%w: role %q: must be %q or %q", ErrInvalidTags, t.Role, RoleServer, RoleClient)
	}
	if t.Datacenter == "" {
		return fmt.Errorf("%w: datacenter: required", ErrInvalidTags)
	}
	if !validDatacenter(t.Datacenter) {
		return fmt.Errorf("%w: datacenter %q: only lower-case letters, digits, '-' and '_' are allowed", ErrInvalidTags, t.Datacenter)
	}
	switch t.Role {
	case RoleServer:
		if t.ServerPort < 1 || t.ServerPort > 65535 {
			return fmt.Errorf("%w: server port %d: a server needs a port in 1-65535", ErrInvalidTags, t.ServerPort)
		}
		if t.BootstrapExpect < 0 {
			return fmt.Errorf("%w: bootstrap expect %d: must not be negative", ErrInvalidTags, t.BootstrapExpect)
		}
		if t.WANPort < 0 || t.WANPort > 65535 {
			return fmt.Errorf("%w: wan port %d: out of range 0-65535", ErrInvalidTags, t.WANPort)
		}
		if t.FSM < 0 {
			return fmt.Errorf("%w: fsm version %d: must not be negative", ErrInvalidTags, t.FSM)
		}
	case RoleClient:
		if t.ServerPort != 0 {
			return fmt.Errorf("%w: server port %d: a client has none", ErrInvalidTags, t.ServerPort)
		}
		if t.BootstrapExpect != 0 {
			return fmt.Errorf("%w: bootstrap expect %d: a client does not bootstrap", ErrInvalidTags, t.BootstrapExpect)
		}
		if t.WANPort != 0 {
			return fmt.Errorf("%w: wan port %d: a client is not in the WAN pool", ErrInvalidTags, t.WANPort)
		}
		if t.FSM != 0 {
			return fmt.Errorf("%w: fsm version %d: a client has no Raft log", ErrInvalidTags, t.FSM)
		}
	}
	if n := t.EncodedSize(); n > MaxTagsSize {
		return fmt.Errorf("%w: encoded tags take %d bytes, memberlist allows %d", ErrTagsTooLarge, n, MaxTagsSize)
	}
	return nil
}

func validDatacenter(dc string) bool {
	for _, r := range dc {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// DecodeTags parses serf tags written by Tags.Encode. Unknown keys are
// ignored (the caller keeps the raw map); a malformed number is an error,
// and the fields that did parse are still returned. It does not call
// Validate: a member advertising odd tags is still a member.
func DecodeTags(raw map[string]string) (Tags, error) {
	t := Tags{
		Role:       Role(raw[TagRole]),
		Datacenter: raw[TagDatacenter],
		NodeID:     raw[TagNodeID],
		Build:      raw[TagBuild],
	}
	var firstErr error
	parse := func(key string) int {
		s, ok := raw[key]
		if !ok {
			return 0
		}
		n, err := strconv.Atoi(s)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%w: tag %q: %q is not a number", ErrInvalidTags, key, s)
		}
		return n
	}
	t.ServerPort = parse(TagServerPort)
	t.BootstrapExpect = parse(TagExpect)
	t.WANPort = parse(TagWANPort)
	t.FSM = parse(TagFSM)
	return t, firstErr
}
