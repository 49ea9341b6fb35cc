package consensus

import (
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
)

// IgnoreUnknownTypeFlag marks a command that replicas which do not know its
// type may skip, so a new command can roll out before every server knows
// it. Without it an unknown command stops the replica rather than let it
// diverge.
const IgnoreUnknownTypeFlag MessageType = 128

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
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Encode returns the log bytes of a command.
func Encode(t MessageType, body any) ([]byte, error) {
	b, err := msgpack.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, b...), nil
}

// Decode reads log bytes into the command body of their type. It never
// panics; an unknown type returns ErrUnknownCommand with the type, so the
// caller can honour IgnoreUnknownTypeFlag.
func Decode(buf []byte) (MessageType, any, error) {
	if len(buf) == 0 {
		return 0, nil, fmt.Errorf("%w: empty", ErrMalformedCommand)
	}
	t := MessageType(buf[0])
	var body any
	switch t &^ IgnoreUnknownTypeFlag {
	case RegisterType:
		body = &catalog.RegisterRequest{}
	case DeregisterType:
		body = &catalog.DeregisterRequest{}
	case CheckUpdateType:
		body = &catalog.CheckStatusUpdate{}
	case PreparedQueryType:
		body = &catalog.PreparedQueryRequest{}
	default:
		return t, nil, fmt.Errorf("%w: %s", ErrUnknownCommand, t)
	}
	if err := msgpack.Unmarshal(buf[1:], body); err != nil {
		return t, nil, fmt.Errorf("%w: %s: %v", ErrMalformedCommand, t, err)
	}
	return t, body, nil
}
