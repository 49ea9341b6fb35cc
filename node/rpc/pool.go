package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"reflect"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Pool holds one multiplexed connection per server address: net/rpc
// pipelines concurrent calls on it, blocking queries included. A broken
// connection is dropped and dialled again on the next call. It is safe for
// concurrent use.
type Pool struct {
	dialTimeout time.Duration
	hello       Hello

	mu      sync.Mutex // guards the fields below
	clients map[string]*rpc.Client
	closed  bool
}

// NewPool returns an empty pool whose connections open with hello.
func NewPool(dialTimeout time.Duration, hello Hello) *Pool {
	return &Pool{dialTimeout: dialTimeout, hello: hello, clients: map[string]*rpc.Client{}}
}

// ErrPoolClosed is returned by Call after Close.
var ErrPoolClosed = errors.New("rpc: pool closed")

// RemoteError is an error the server's endpoint returned, as opposed to a
// failure to reach it.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Call invokes method on the server at addr. It returns when the reply
// arrives, ctx ends (the call is then abandoned), or the call's own
// deadline passes: a few seconds, or for a blocking query its wait plus a
// margin. A server that does not answer in time is treated as unreachable:
// the connection is dropped and the error is a transport error, so the
// caller can try another server. An error from the endpoint comes back as
// *RemoteError.
func (p *Pool) Call(ctx context.Context, addr, method string, args, reply any) error {
	if err := ctx.Err(); err != nil {
		return err // the caller gave up already: send nothing
	}
	c, err := p.client(ctx, addr)
	if err != nil {
		return err
	}
	timeout := CallTimeout(args)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	// The receiver gets what is left of the caller's time, so it can drop
	// a request that waited past it (in its socket, behind a pause).
	budget := timeout
	if dl, ok := ctx.Deadline(); ok {
		budget = max(min(budget, time.Until(dl)), time.Millisecond)
	}
	// Decode into a value of its own: an abandoned call may still be
	// answered later, and must not write into the caller's.
	fresh := reflect.New(reflect.TypeOf(reply).Elem())
	call := c.Go(method, &budgeted{args: args, budget: budget}, fresh.Interface(), make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		p.drop(addr, c)
		return fmt.Errorf("rpc %s to %s: no answer within %v", method, addr, timeout)
	}
	if call.Error == nil {
		reflect.ValueOf(reply).Elem().Set(fresh.Elem())
		return nil
	}
	var se rpc.ServerError
	if errors.As(call.Error, &se) {
		return &RemoteError{Msg: string(se)}
	}
	p.drop(addr, c)
	return fmt.Errorf("rpc %s to %s: %w", method, addr, call.Error)
}

// keepAlive probes an idle connection after 5 s and gives it up after 3
// unanswered probes 2 s apart. A blocking query leaves its connection idle
// for minutes, and a server behind a cut link (or whose host died) sends
// nothing back, not even a RST: without probes the query would wait out
// its whole deadline while the agent served the answer it had as fresh.
// The probes end it within about 11 s, and the caller moves to another
// server (or, across datacenters, reports the datacenter unreachable).
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3}

// userTimeout bounds how long data sent on a connection may go
// unacknowledged (Linux's TCP_USER_TIMEOUT): the case keepalive does not
// cover, a request written just as the link was cut.
const userTimeout = 11 * time.Second

// Call deadlines.
const (
	// DefaultCallTimeout bounds a call that does not block.
	DefaultCallTimeout = 10 * time.Second
	// blockingMargin is added to a blocking query's wait.
	blockingMargin = 10 * time.Second
	defaultMaxWait = 5 * time.Minute
)

// queryOptioner is implemented by every argument that embeds QueryOptions.
type queryOptioner interface{ Options() *QueryOptions }

// CallTimeout is how long a call with args may take: a blocking query its
// wait (default 5 m) plus the server's jitter (1/16) plus a margin, any
// other call DefaultCallTimeout.
func CallTimeout(args any) time.Duration {
	if q, ok := args.(queryOptioner); ok && q.Options().MinIndex > 0 {
		wait := q.Options().MaxWait
		if wait <= 0 {
			wait = defaultMaxWait
		}
		return wait + wait/16 + blockingMargin
	}
	return DefaultCallTimeout
}

// Connect makes sure there is a connection to addr, dialling one if
// needed, within ctx: a caller about to make a long call (a blocking
// query) bounds the dial separately from the call.
func (p *Pool) Connect(ctx context.Context, addr string) error {
	_, err := p.client(ctx, addr)
	return err
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

	d := net.Dialer{Timeout: p.dialTimeout, KeepAliveConfig: keepAlive, Control: controlUserTimeout(userTimeout)}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // the caller gave up
		}
		// %v, not %w: a dial that timed out on its own is a failure to
		// reach the server, not the caller's deadline (net's timeout
		// error unwraps to context.DeadlineExceeded, which
		// IsTransportError would take for the caller giving up).
		return nil, fmt.Errorf("rpc dial %s: %v", addr, err)
	}
	conn.SetWriteDeadline(time.Now().Add(p.dialTimeout))
	opening, err := msgpack.Marshal(&p.hello)
	if err == nil {
		_, err = conn.Write(append([]byte{ConnByte}, opening...))
	}
	if err != nil {
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

// Drop closes the connection to addr, if there is one: the calls in
// flight on it fail at once with a transport error, so their callers move
// to another server instead of waiting out their deadline. The agent drops
// a server's connection when gossip declares the server failed: a host
// that died sends no RST, and its calls would otherwise hang.
func (p *Pool) Drop(addr string) {
	p.mu.Lock()
	c, ok := p.clients[addr]
	delete(p.clients, addr)
	p.mu.Unlock()
	if ok {
		c.Close()
	}
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
