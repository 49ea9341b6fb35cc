package rpc

import (
	"bufio"
	"fmt"
	"io"
	"net/rpc"
	"sync"
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

// Admit decides whether a server takes a call, once its arguments are
// read: an error refuses it (the caller gets the error as the call's
// answer, and the connection carries on). done, when not nil, is called
// once the call has returned, before its answer is written (or when the
// connection closes first).
type Admit func(method string, args any) (done func(), err error)

// header precedes every request and response body.
type header struct {
	ServiceMethod string
	Seq           uint64
	Error         string
	// Budget, on a request, is the time its sender has left for it
	// (nanoseconds; 0: unknown, from a sender of an older build). The
	// receiver turns it into a deadline of its own on receipt, so no
	// clocks are compared between hosts.
	Budget int64 `msgpack:",omitempty"`
}

// Deadliner is implemented by arguments that take the deadline their
// sender's budget sets (the write requests, through
// catalog.WriteRequest): the server codec sets it on receipt.
type Deadliner interface {
	SetDeadline(time.Time)
}

// budgeted is a call's arguments with the budget the pool puts in its
// header.
type budgeted struct {
	args   any
	budget time.Duration
}

// codec frames net/rpc messages as a msgpack header followed by a msgpack
// body. Writes are serialised by net/rpc on the client side and by mu here
// (net/rpc's server calls WriteResponse from many goroutines, holding its
// own lock, but the lock is cheap insurance for the buffered writer).
type codec struct {
	rwc io.ReadWriteCloser
	dec *msgpack.Decoder
	enc *msgpack.Encoder
	buf *bufio.Writer

	mu     sync.Mutex // guards enc and buf
	closed bool
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

func (c *codec) write(h *header, body any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
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

func (c *codec) readBody(body any) error {
	if body == nil {
		return c.dec.Skip()
	}
	return c.dec.Decode(body)
}

func (c *codec) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.rwc.Close()
}

// clientCodec adapts codec to rpc.ClientCodec.
type clientCodec struct{ *codec }

// NewClientCodec returns the client side of the codec over rwc.
func NewClientCodec(rwc io.ReadWriteCloser) rpc.ClientCodec { return clientCodec{newCodec(rwc)} }

func (c clientCodec) WriteRequest(r *rpc.Request, body any) error {
	h := &header{ServiceMethod: r.ServiceMethod, Seq: r.Seq}
	if b, ok := body.(*budgeted); ok {
		h.Budget, body = int64(b.budget), b.args
	}
	return c.write(h, body)
}

func (c clientCodec) ReadResponseHeader(r *rpc.Response) error {
	var h header
	if err := c.readHeader(&h); err != nil {
		return err
	}
	r.ServiceMethod, r.Seq, r.Error = h.ServiceMethod, h.Seq, h.Error
	return nil
}

func (c clientCodec) ReadResponseBody(body any) error { return c.readBody(body) }

// serverCodec adapts codec to rpc.ServerCodec, admitting each call.
type serverCodec struct {
	*codec
	admit Admit
	// method, seq and deadline are the request being read: net/rpc
	// reads header and body one after the other from one goroutine.
	method   string
	seq      uint64
	deadline time.Time

	doneMu sync.Mutex // guards done
	done   map[uint64]func()
}

// Accept reads the Hello that opens a connection (after ConnByte) and
// returns the server side of the codec over rwc, with the Admit that
// admitFor chooses for that caller (nil: take every call). The caller
// bounds the wait for the hello with a read deadline.
func Accept(rwc io.ReadWriteCloser, admitFor func(Hello) Admit) (rpc.ServerCodec, error) {
	c := &serverCodec{codec: newCodec(rwc), done: make(map[uint64]func())}
	var h Hello
	if err := c.dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("rpc hello: %w", err)
	}
	if admitFor != nil {
		c.admit = admitFor(h)
	}
	return c, nil
}

func (c *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	var h header
	if err := c.readHeader(&h); err != nil {
		return err
	}
	c.doneMu.Lock()
	_, inFlight := c.done[h.Seq]
	c.doneMu.Unlock()
	if inFlight {
		// net/rpc clients never reuse a sequence number in flight; one that
		// does would swap admissions between calls. End the connection.
		return fmt.Errorf("rpc: sequence number %d reused while in flight", h.Seq)
	}
	r.ServiceMethod, r.Seq = h.ServiceMethod, h.Seq
	c.method, c.seq, c.deadline = h.ServiceMethod, h.Seq, time.Time{}
	if h.Budget > 0 {
		c.deadline = time.Now().Add(time.Duration(min(h.Budget, int64(maxBudget))))
	}
	return nil
}

// maxBudget caps the budget a request may claim.
const maxBudget = time.Hour

func (c *serverCodec) ReadRequestBody(body any) error {
	if err := c.readBody(body); err != nil || body == nil {
		return err
	}
	if d, ok := body.(Deadliner); ok && !c.deadline.IsZero() {
		d.SetDeadline(c.deadline)
	}
	if c.admit == nil {
		return nil
	}
	done, err := c.admit(c.method, body)
	if err != nil {
		return err
	}
	if done != nil {
		c.doneMu.Lock()
		c.done[c.seq] = done
		c.doneMu.Unlock()
	}
	return nil
}

func (c *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	// The call's work is over: free its admission before the caller can
	// see the answer and call again.
	c.finish(r.Seq)
	err := c.write(&header{ServiceMethod: r.ServiceMethod, Seq: r.Seq, Error: r.Error}, body)
	if err != nil {
		// A response that cannot be written means the connection is gone:
		// close it so the server's read loop ends too.
		c.Close()
	}
	return err
}

// finish runs the done func of the call seq, if it has one.
func (c *serverCodec) finish(seq uint64) {
	c.doneMu.Lock()
	done := c.done[seq]
	delete(c.done, seq)
	c.doneMu.Unlock()
	if done != nil {
		done()
	}
}

// Close closes the connection and ends the calls still in flight on it
// as far as admission is concerned: their answers can no longer be sent.
func (c *serverCodec) Close() error {
	err := c.codec.Close()
	c.doneMu.Lock()
	dones := c.done
	c.done = make(map[uint64]func())
	c.doneMu.Unlock()
	for _, done := range dones {
		done()
	}
	return err
}
