package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"sync"
	"time"
)

// Pool holds one multiplexed connection per server address: net/rpc
// pipelines concurrent calls on it, blocking queries included. A broken
// connection is dropped and dialled again on the next call. It is safe for
// concurrent use.
type Pool struct {
	dialTimeout time.Duration

	mu      sync.Mutex // guards the fields below
	clients map[string]*rpc.Client
	closed  bool
}

// NewPool returns an empty pool.
func NewPool(dialTimeout time.Duration) *Pool {
	return &Pool{dialTimeout: dialTimeout, clients: map[string]*rpc.Client{}}
}

// ErrPoolClosed is returned by Call after Close.
var ErrPoolClosed = errors.New("rpc: pool closed")

// RemoteError is an error the server's endpoint returned, as opposed to a
// failure to reach it.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Call invokes method on the server at addr. It returns when the reply
// arrives or ctx ends (the call is then abandoned; its reply is dropped).
// An error from the endpoint comes back as *RemoteError; anything else is
// a transport failure, after which the connection is redialled.
func (p *Pool) Call(ctx context.Context, addr, method string, args, reply any) error {
	c, err := p.client(ctx, addr)
	if err != nil {
		return err
	}
	call := c.Go(method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if call.Error == nil {
		return nil
	}
	var se rpc.ServerError
	if errors.As(call.Error, &se) {
		return &RemoteError{Msg: string(se)}
	}
	p.drop(addr, c)
	return fmt.Errorf("rpc %s to %s: %w", method, addr, call.Error)
}

func (p *Pool) client(ctx context.Context, addr string) (*rpc.Client, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if c, ok := p.clients[addr]; ok {
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()

	d := net.Dialer{Timeout: p.dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rpc dial %s: %w", addr, err)
	}
	conn.SetWriteDeadline(time.Now().Add(p.dialTimeout))
	if _, err := conn.Write([]byte{ConnByte}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("rpc dial %s: %w", addr, err)
	}
	conn.SetWriteDeadline(time.Time{})
	c := rpc.NewClientWithCodec(NewClientCodec(conn))

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return nil, ErrPoolClosed
	}
	if old, ok := p.clients[addr]; ok {
		c.Close() // another caller dialled first
		return old, nil
	}
	p.clients[addr] = c
	return c, nil
}

func (p *Pool) drop(addr string, c *rpc.Client) {
	p.mu.Lock()
	if p.clients[addr] == c {
		delete(p.clients, addr)
	}
	p.mu.Unlock()
	c.Close()
}

// Close closes every connection; calls in flight fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for addr, c := range p.clients {
		c.Close()
		delete(p.clients, addr)
	}
	return nil
}

// IsTransportError reports whether err is a failure to reach the server
// rather than an answer from it or the caller giving up: the call may be
// tried on another server.
func IsTransportError(err error) bool {
	var re *RemoteError
	return err != nil && !errors.As(err, &re) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
