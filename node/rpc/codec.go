package rpc

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ConnByte is the first byte of an RPC connection on the server port. A
// Hello follows it, then the calls.
const ConnByte byte = 0x02

// Hello is the first message of an RPC connection: who is calling, so a
// server can hold each client to its limits.
type Hello struct {
	// Node is the calling agent's node name.
	Node string
	// Server marks a server calling on behalf of others (a forwarded
	// call); the server it came from already held the client to its
	// limits.
	Server bool
}

// header precedes every request and response body. The layout is the one
// net/rpc's msgpack codec wrote, which builds before this package's own
// server still send and expect; fields added since are omitted when empty,
// and a peer that does not know them skips them.
type header struct {
	ServiceMethod string
	Seq           uint64
	Error         string
	// Budget, on a request, is the time its sender has left for it
	// (nanoseconds; 0: unknown, from a sender of an older build). The
	// receiver turns it into a deadline of its own on receipt, so no
	// clocks are compared between hosts.
	Budget int64 `msgpack:",omitempty"`
	// Code, on a response with an Error, names the sentinel error it is
	// (see Codes); empty from a server of an older build, or for an
	// error that is none of them.
	Code string `msgpack:",omitempty"`
}

// maxBudget caps the budget a request may claim.
const maxBudget = time.Hour

// codec frames messages as a msgpack header followed by a msgpack body.
// Reads come from one goroutine per connection; writes from many, which
// mu serialises.
type codec struct {
	rwc io.ReadWriteCloser
	dec *msgpack.Decoder

	mu  sync.Mutex // guards enc and buf
	enc *msgpack.Encoder
	buf *bufio.Writer

	// closed is set by Close, which closes rwc without waiting for a
	// write in progress: closing is what ends a write stuck on the
	// network.
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

func newCodec(rwc io.ReadWriteCloser) *codec {
	buf := bufio.NewWriter(rwc)
	return &codec{
		rwc: rwc,
		dec: msgpack.NewDecoder(bufio.NewReader(rwc)),
		enc: msgpack.NewEncoder(buf),
		buf: buf,
	}
}

// write sends one message: h, then body.
func (c *codec) write(h *header, body any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return net.ErrClosed
	}
	if err := c.enc.Encode(h); err != nil {
		return err
	}
	if err := c.enc.Encode(body); err != nil {
		return err
	}
	return c.buf.Flush()
}

func (c *codec) readHeader(h *header) error {
	*h = header{}
	return c.dec.Decode(h)
}

// readBody decodes the body that follows a header into body, or skips it
// when body is nil.
func (c *codec) readBody(body any) error {
	if body == nil {
		return c.dec.Skip()
	}
	return c.dec.Decode(body)
}

// Close closes the connection, ending a read or write in progress; it is
// safe to call more than once, and from any goroutine.
func (c *codec) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.rwc.Close()
	})
	return c.closeErr
}
