package rpc

import (
	"bufio"
	"io"
	"net/rpc"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// ConnByte is the first byte of an RPC connection on the server port.
const ConnByte byte = 0x02

// header precedes every request and response body.
type header struct {
	ServiceMethod string
	Seq           uint64
	Error         string
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
	return c.write(&header{ServiceMethod: r.ServiceMethod, Seq: r.Seq}, body)
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

// serverCodec adapts codec to rpc.ServerCodec.
type serverCodec struct{ *codec }

// NewServerCodec returns the server side of the codec over rwc.
func NewServerCodec(rwc io.ReadWriteCloser) rpc.ServerCodec { return serverCodec{newCodec(rwc)} }

func (c serverCodec) ReadRequestHeader(r *rpc.Request) error {
	var h header
	if err := c.readHeader(&h); err != nil {
		return err
	}
	r.ServiceMethod, r.Seq = h.ServiceMethod, h.Seq
	return nil
}

func (c serverCodec) ReadRequestBody(body any) error { return c.readBody(body) }

func (c serverCodec) WriteResponse(r *rpc.Response, body any) error {
	err := c.write(&header{ServiceMethod: r.ServiceMethod, Seq: r.Seq, Error: r.Error}, body)
	if err != nil {
		// A response that cannot be written means the connection is gone:
		// close it so the server's read loop ends too.
		c.Close()
	}
	return err
}
