package gossip

import (
	"strconv"

	"github.com/hashicorp/serf/serf"
)

// EventType says what happened to the members of an Event.
type EventType int

// Member event types, one per serf member event.
const (
	// MemberJoin: members joined, or came back after failing or leaving.
	// A pool also reports its own join, first, when it starts.
	MemberJoin EventType = iota + 1
	// MemberLeave: members left gracefully, or were force-left.
	MemberLeave
	// MemberFailed: the failure detector declared members dead.
	MemberFailed
	// MemberUpdate: members changed their tags.
	MemberUpdate
	// MemberReap: failed or left members were forgotten (after
	// Config.ReconnectTimeout or Config.TombstoneTimeout, or a pruning
	// ForceLeave). They are no longer in Members.
	MemberReap
)

// String returns the type's name, e.g. "member-join".
func (t EventType) String() string {
	switch t {
	case MemberJoin:
		return "member-join"
	case MemberLeave:
		return "member-leave"
	case MemberFailed:
		return "member-failed"
	case MemberUpdate:
		return "member-update"
	case MemberReap:
		return "member-reap"
	default:
		return "event-" + strconv.Itoa(int(t))
	}
}

// Event is a change of membership, delivered to Config.EventHandler.
// Members carry their state after the change.
type Event struct {
	Type    EventType
	Members []Member
}

func eventTypeFromSerf(t serf.EventType) (EventType, bool) {
	switch t {
	case serf.EventMemberJoin:
		return MemberJoin, true
	case serf.EventMemberLeave:
		return MemberLeave, true
	case serf.EventMemberFailed:
		return MemberFailed, true
	case serf.EventMemberUpdate:
		return MemberUpdate, true
	case serf.EventMemberReap:
		return MemberReap, true
	default:
		return 0, false
	}
}

// eventFromSerf converts a serf member event; user events and queries,
// which this package does not use, give false.
func eventFromSerf(e serf.Event) (Event, bool) {
	me, ok := e.(serf.MemberEvent)
	if !ok {
		return Event{}, false
	}
	typ, ok := eventTypeFromSerf(me.Type)
	if !ok {
		return Event{}, false
	}
	ev := Event{Type: typ, Members: make([]Member, 0, len(me.Members))}
	for _, m := range me.Members {
		ev.Members = append(ev.Members, memberFromSerf(m))
	}
	return ev, true
}
