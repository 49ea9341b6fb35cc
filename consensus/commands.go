package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/meshd/meshd/catalog"
	"github.com/vmihailenco/msgpack/v5"
)

// MessageType is the first byte of a Raft command.
type MessageType uint8

// Command types. Values are part of the log format: never renumber.
const (
	RegisterType    MessageType = 1
	DeregisterType  MessageType = 2
	CheckUpdateType MessageType = 3
	// PreparedQueryType creates, replaces or deletes a prepared query.
	// Older servers skip it (IgnoreUnknownTypeFlag is set on it when
	// applied), so a mixed-version cluster keeps running.
	PreparedQueryType MessageType = 4
	// AutopilotConfigType stores the autopilot configuration (FSM format
	// 3). The leader writes it only once every server reads it, and
	// without IgnoreUnknownTypeFlag: a server that skipped it would run
	// its leadership on another configuration.
	AutopilotConfigType MessageType = 5
)

// IgnoreUnknownTypeFlag marks a command that replicas which do not know its
// type may skip, so a new command can roll out before every server knows
// it. Without it an unknown command stops the replica rather than let it
// diverge.
const IgnoreUnknownTypeFlag MessageType = 128

// StampedFlag marks an entry whose type byte is followed by the leader's
// clock when it appended the entry (8 bytes, big-endian Unix
// nanoseconds), then the body. Only stamped entries take part in the
// FSM's write deduplication, whose memory expires by these stamps; the
// leader writes them once every server reads them (StampedVersion), and a
// server of an older build stops at the first one rather than apply it
// without deduplicating.
const StampedFlag MessageType = 64

// FSMVersion is the newest log and snapshot format this build reads and
// writes: 1, bodies alone and catalog snapshots; 2, stamped entries and
// snapshots that carry the applied writes' identities; 3, the autopilot
// configuration (AutopilotConfigType, its snapshot record, and the
// check-and-set conflicts among the remembered writes' errors).
const FSMVersion = 3

// StampedVersion is the first format with stamped entries: the leader
// stamps entries once every server reads it.
const StampedVersion = 2

// AutopilotVersion is the first format with the autopilot configuration:
// the leader stores one once every server reads it.
const AutopilotVersion = 3

var (
	// ErrUnknownCommand marks a command type this build does not know.
	ErrUnknownCommand = errors.New("unknown command type")
	// ErrMalformedCommand marks command bytes that do not decode.
	ErrMalformedCommand = errors.New("malformed command")
)

func (t MessageType) String() string {
	switch t &^ IgnoreUnknownTypeFlag {
	case RegisterType:
		return "register"
	case DeregisterType:
		return "deregister"
	case CheckUpdateType:
		return "check-update"
	case PreparedQueryType:
		return "prepared-query"
	case AutopilotConfigType:
		return "autopilot-config"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// stampSize is the length of an entry's leader stamp.
const stampSize = 8

// Entry is a decoded log entry.
type Entry struct {
	// Type is the command type, with IgnoreUnknownTypeFlag as written and
	// without StampedFlag.
	Type MessageType
	// Stamp is the leader's clock when it appended the entry, in Unix
	// nanoseconds; 0 for an unstamped entry.
	Stamp int64
	// Body is the command, a pointer to its request type.
	Body any
}

// Encode returns the log bytes of a command; stamp > 0 writes a stamped
// entry.
func Encode(t MessageType, stamp int64, body any) ([]byte, error) {
	b, err := msgpack.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	if stamp <= 0 {
		return append([]byte{byte(t &^ StampedFlag)}, b...), nil
	}
	buf := make([]byte, 1+stampSize, 1+stampSize+len(b))
	buf[0] = byte(t | StampedFlag)
	binary.BigEndian.PutUint64(buf[1:], uint64(stamp))
	return append(buf, b...), nil
}

// Decode reads log bytes into the command body of their type. It never
// panics; an unknown type returns ErrUnknownCommand with the type, so the
// caller can honour IgnoreUnknownTypeFlag.
func Decode(buf []byte) (Entry, error) {
	if len(buf) == 0 {
		return Entry{}, fmt.Errorf("%w: empty", ErrMalformedCommand)
	}
	e := Entry{Type: MessageType(buf[0]) &^ StampedFlag}
	body := buf[1:]
	if MessageType(buf[0])&StampedFlag != 0 {
		if len(buf) < 1+stampSize {
			return e, fmt.Errorf("%w: %s: stamp cut short", ErrMalformedCommand, e.Type)
		}
		e.Stamp = int64(binary.BigEndian.Uint64(buf[1:]))
		if e.Stamp <= 0 {
			return e, fmt.Errorf("%w: %s: stamp %d", ErrMalformedCommand, e.Type, e.Stamp)
		}
		body = buf[1+stampSize:]
	}
	switch e.Type &^ IgnoreUnknownTypeFlag {
	case RegisterType:
		e.Body = &catalog.RegisterRequest{}
	case DeregisterType:
		e.Body = &catalog.DeregisterRequest{}
	case CheckUpdateType:
		e.Body = &catalog.CheckStatusUpdate{}
	case PreparedQueryType:
		e.Body = &catalog.PreparedQueryRequest{}
	case AutopilotConfigType:
		e.Body = &catalog.AutopilotConfigRequest{}
	default:
		return e, fmt.Errorf("%w: %s", ErrUnknownCommand, e.Type)
	}
	if err := msgpack.Unmarshal(body, e.Body); err != nil {
		return e, fmt.Errorf("%w: %s: %v", ErrMalformedCommand, e.Type, err)
	}
	return e, nil
}
