package rpc

import (
	"context"
	"errors"
	"strings"
)

var (
	// ErrPoolClosed is returned by Call after Close.
	ErrPoolClosed = errors.New("rpc: pool closed")
	// ErrUnknownMethod answers a call of a method the server does not
	// offer (a server of an older build, during a rolling upgrade).
	ErrUnknownMethod = errors.New("rpc: unknown method")
)

// unknownMethod is the code of ErrUnknownMethod.
const unknownMethod = "unknown_method"

// Code names a sentinel error that crosses the wire: a server's answer
// carries the Name of the sentinel its error wraps, and the caller's error
// wraps Err again, so errors.Is works on both sides of the network.
type Code struct {
	Name string
	Err  error
}

// Codes lists the sentinel errors answers may carry. A server and its
// callers use the same list; where an error wraps several, the first
// listed names it.
type Codes []Code

// nameOf is the name of the first listed sentinel err wraps ("" for none).
func (cs Codes) nameOf(err error) string {
	for _, c := range cs {
		if errors.Is(err, c.Err) {
			return c.Name
		}
	}
	return ""
}

// Remote is the error a caller gets for an answer with error text msg
// and code name. An answer without a code, from a server of an older build
// that sent errors as text only, is matched by the start of its text, as
// those builds matched it.
func (cs Codes) Remote(name, msg string) *RemoteError {
	re := &RemoteError{Code: name, Msg: msg}
	for _, c := range cs {
		if name == c.Name || name == "" && strings.HasPrefix(msg, c.Err.Error()) {
			re.err = c.Err
			break
		}
	}
	if re.err == nil && (name == unknownMethod || name == "" && strings.HasPrefix(msg, "rpc: can't find ")) {
		re.err = ErrUnknownMethod // net/rpc's text, from an older server
	}
	return re
}

// RemoteError is an error the server's endpoint returned, as opposed to a
// failure to reach it. It unwraps to the sentinel its code names.
type RemoteError struct {
	// Code names the sentinel error (empty: none, or an older server's
	// text that matched none).
	Code string
	Msg  string
	err  error
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.err }

// IsTransportError reports whether err is a failure to reach the server
// rather than an answer from it or the caller giving up: the call may be
// tried on another server.
func IsTransportError(err error) bool {
	var re *RemoteError
	return err != nil && !errors.As(err, &re) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
