package catalog

import (
	"crypto/rand"
	"encoding/hex"
)

// WriteID identifies one write from where it entered the cluster: 16
// random bytes, kept across every forward and retry, so the FSM can apply
// the write once however many copies of it reach the Raft log. The zero
// value is a write without identity (one written before identities
// existed); such a write is applied each time it is committed.
type WriteID [16]byte

// NewWriteID returns a fresh random identity.
func NewWriteID() WriteID {
	var id WriteID
	rand.Read(id[:]) // never fails (crypto/rand panics rather)
	return id
}

// IsZero reports whether id is unset. msgpack's omitempty uses it.
func (id WriteID) IsZero() bool { return id == WriteID{} }

func (id WriteID) String() string { return hex.EncodeToString(id[:]) }

// WriteRequest is embedded in every write request: the write's identity.
// A request
// value is one write: a caller that means a second write, even an
// identical one, builds a new request (or clears WriteID), or the second
// is taken for a retry of the first and ignored.
type WriteRequest struct {
	WriteID WriteID `json:"-" msgpack:",omitempty"`
}

// WriteMeta returns the request's write fields; every write request has
// it through embedding.
func (w *WriteRequest) WriteMeta() *WriteRequest { return w }

// EnsureID gives the request an identity unless it has one, and returns
// it: where a write enters the cluster.
func (w *WriteRequest) EnsureID() WriteID {
	if w.WriteID.IsZero() {
		w.WriteID = NewWriteID()
	}
	return w.WriteID
}

// Write is implemented by every write request (through WriteRequest).
type Write interface {
	WriteMeta() *WriteRequest
}
