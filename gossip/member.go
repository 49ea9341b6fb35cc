package gossip

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/serf/serf"
)

// MemberStatus is a member's state as this pool sees it.
type MemberStatus string

// Member states. A member that stops answering probes goes from alive to
// failed; one that leaves gracefully goes through leaving to left. Failed
// members are reaped after Config.ReconnectTimeout, left ones after
// Config.TombstoneTimeout.
const (
	// StatusAlive: the member answers probes.
	StatusAlive MemberStatus = "alive"
	// StatusLeaving: the member announced a graceful leave that has not
	// finished.
	StatusLeaving MemberStatus = "leaving"
	// StatusLeft: the member left gracefully (or was force-left).
	StatusLeft MemberStatus = "left"
	// StatusFailed: the failure detector declared the member dead.
	StatusFailed MemberStatus = "failed"
	// StatusNone: serf holds the name but no state for it yet. It is
	// rare and transient; it is reported as is rather than as alive,
	// because nothing has shown the member to be reachable.
	StatusNone MemberStatus = "none"
)

func statusFromSerf(s serf.MemberStatus) MemberStatus {
	switch s {
	case serf.StatusAlive:
		return StatusAlive
	case serf.StatusLeaving:
		return StatusLeaving
	case serf.StatusLeft:
		return StatusLeft
	case serf.StatusFailed:
		return StatusFailed
	default:
		return StatusNone
	}
}

// Member is one agent of the pool as this pool sees it. It is a copy:
// changing it changes nothing in the pool.
type Member struct {
	// Name is the agent's node name, unique in the pool.
	Name string
	// Addr is the member's advertised gossip IP.
	Addr netip.Addr
	// Port is the member's gossip port.
	Port int
	// Status is the member's state.
	Status MemberStatus
	// Tags are the decoded tags. Fields the member did not advertise, or
	// advertised malformed, are zero; RawTags has everything.
	Tags Tags
	// RawTags is the member's serf tag map as received.
	RawTags map[string]string
}

// IsServer reports whether the member advertises the server role.
func (m Member) IsServer() bool { return m.Tags.Role == RoleServer }

func memberFromSerf(sm serf.Member) Member {
	raw := make(map[string]string, len(sm.Tags))
	for k, v := range sm.Tags {
		raw[k] = v
	}
	// A malformed field stays zero; ServerFromMember rejects what it needs.
	tags, _ := DecodeTags(raw)
	return Member{
		Name:    sm.Name,
		Addr:    addrFromIP(sm.Addr),
		Port:    int(sm.Port),
		Status:  statusFromSerf(sm.Status),
		Tags:    tags,
		RawTags: raw,
	}
}

func addrFromIP(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
}

// Server is a server agent as the leader and bootstrap code need it: its
// identity and where its RPC port is.
type Server struct {
	// Name is the server's node name.
	Name string
	// ID is its node ID (Tags.NodeID); may be empty.
	ID string
	// Datacenter is its datacenter.
	Datacenter string
	// Addr is the RPC address: the gossip IP and Tags.ServerPort.
	Addr netip.AddrPort
	// Expect is its bootstrap_expect (0: not bootstrapping by expectation).
	Expect int
	// Build is its meshd version string.
	Build string
	// FSM is the newest Raft log format it reads (Tags.FSM); 0 for a
	// build from before the tag.
	FSM int
	// Status is its gossip state.
	Status MemberStatus
}

// ServerFromMember returns the Server that m describes, and false when m
// is not a server or its tags lack what a server needs: a datacenter,
// a valid gossip IP and an RPC port in 1-65535. Any status is accepted;
// callers filter on Server.Status.
func ServerFromMember(m Member) (Server, bool) {
	if m.Tags.Role != RoleServer || m.Tags.Datacenter == "" || !m.Addr.IsValid() {
		return Server{}, false
	}
	if m.Tags.ServerPort < 1 || m.Tags.ServerPort > 65535 {
		return Server{}, false
	}
	if _, err := DecodeTags(m.RawTags); err != nil && m.RawTags != nil {
		return Server{}, false
	}
	return Server{
		Name:       m.Name,
		ID:         m.Tags.NodeID,
		Datacenter: m.Tags.Datacenter,
		Addr:       netip.AddrPortFrom(m.Addr, uint16(m.Tags.ServerPort)),
		Expect:     m.Tags.BootstrapExpect,
		Build:      m.Tags.Build,
		FSM:        m.Tags.FSM,
		Status:     m.Status,
	}, true
}
