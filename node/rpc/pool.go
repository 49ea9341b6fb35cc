package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Pool holds one multiplexed connection per server address: concurrent
// calls are pipelined on it, blocking queries included. A broken
// connection is dropped and dialled again on the next call. It is safe for
// concurrent use.
type Pool struct {
	dialTimeout time.Duration
	hello       Hello
	codes       Codes

	mu     sync.Mutex // guards conns and closed
	conns  map[string]*clientConn
	closed bool
	// readers are the connections' read loops, which Close waits for.
	readers sync.WaitGroup
}

// NewPool returns an empty pool whose connections open with hello; codes
// turns the servers' error codes back into sentinel errors.
func NewPool(dialTimeout time.Duration, hello Hello, codes Codes) *Pool {
	return &Pool{dialTimeout: dialTimeout, hello: hello, codes: codes, conns: map[string]*clientConn{}}
}

// Call invokes method on the server at addr. It returns when the reply
// arrives, ctx ends (the call is then abandoned), or the call's own
// deadline passes: a few seconds, or for a blocking query its wait plus a
// margin. A server that does not answer in time is treated as unreachable:
// the connection is dropped and the error is a transport error, so the
// caller can try another server. An error from the endpoint comes back as
// *RemoteError, which unwraps to the sentinel error its code names.
func (p *Pool) Call(ctx context.Context, addr, method string, args, reply any) error {
	if err := ctx.Err(); err != nil {
		return err // the caller gave up already: send nothing
	}
	c, err := p.conn(ctx, addr)
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
	call := c.send(method, budget, args, fresh.Interface())
	select {
	case err = <-call.done:
	case <-ctx.Done():
		c.abandon(call)
		return ctx.Err()
	case <-timer.C:
		c.abandon(call)
		p.drop(addr, c)
		return fmt.Errorf("rpc %s to %s: no answer within %v", method, addr, timeout)
	}
	if err == nil {
		reflect.ValueOf(reply).Elem().Set(fresh.Elem())
		return nil
	}
	var re *RemoteError
	if errors.As(err, &re) {
		return err
	}
	p.drop(addr, c)
	return fmt.Errorf("rpc %s to %s: %w", method, addr, err)
}

// clientConn is the calling side of one connection: calls are sent with
// a sequence number of their own, and a read loop hands each answer to
// the call it answers.
type clientConn struct {
	c     *codec
	codes Codes

	mu      sync.Mutex // guards the fields below
	seq     uint64
	pending map[uint64]*pendingCall
	err     error // why the connection failed; set once
}

// pendingCall is a call waiting for its answer: done gets the call's
// error (nil with resp filled) exactly once.
type pendingCall struct {
	seq  uint64
	resp any
	done chan error
}

// send writes a call; its answer, or the connection's failure, arrives
// on the call's done.
func (cc *clientConn) send(method string, budget time.Duration, args, resp any) *pendingCall {
	call := &pendingCall{resp: resp, done: make(chan error, 1)}
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		call.done <- cc.err
		return call
	}
	cc.seq++
	call.seq = cc.seq
	cc.pending[call.seq] = call
	cc.mu.Unlock()
	if err := cc.c.write(&header{ServiceMethod: method, Seq: call.seq, Budget: int64(budget)}, args); err != nil {
		cc.fail(err) // ends this call too
	}
	return call
}

// abandon forgets a call whose caller stopped waiting: its answer, if it
// comes, is skipped.
func (cc *clientConn) abandon(call *pendingCall) {
	cc.mu.Lock()
	delete(cc.pending, call.seq)
	cc.mu.Unlock()
}

// readLoop reads answers until the connection fails.
func (cc *clientConn) readLoop() {
	for {
		var h header
		if err := cc.c.readHeader(&h); err != nil {
			cc.fail(err)
			return
		}
		cc.mu.Lock()
		call := cc.pending[h.Seq]
		delete(cc.pending, h.Seq)
		cc.mu.Unlock()
		var body any
		if call != nil && h.Error == "" {
			body = call.resp
		}
		if err := cc.c.readBody(body); err != nil {
			if call != nil {
				call.done <- err
			}
			cc.fail(err)
			return
		}
		switch {
		case call == nil: // abandoned
		case h.Error != "":
			call.done <- cc.codes.Remote(h.Code, h.Error)
		default:
			call.done <- nil
		}
	}
}

// fail closes the connection and fails the calls waiting on it with err.
func (cc *clientConn) fail(err error) {
	cc.c.Close()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err == nil {
		cc.err = err
	}
	for seq, call := range cc.pending {
		delete(cc.pending, seq)
		call.done <- cc.err
	}
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

// IsBlocking reports whether args ask for a blocking query.
func IsBlocking(args any) bool {
	q, ok := args.(queryOptioner)
	return ok && q.Options().MinIndex > 0
}

// CallTimeout is how long a call with args may take: a blocking query its
// wait (default 5 m) plus the server's jitter (1/16) plus a margin, any
// other call DefaultCallTimeout.
func CallTimeout(args any) time.Duration {
	if IsBlocking(args) {
		wait := args.(queryOptioner).Options().MaxWait
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
	_, err := p.conn(ctx, addr)
	return err
}

func (p *Pool) conn(ctx context.Context, addr string) (*clientConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if c, ok := p.conns[addr]; ok {
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()

	d := net.Dialer{Timeout: p.dialTimeout, KeepAliveConfig: keepAlive, Control: controlUserTimeout(userTimeout)}
	nc, err := d.DialContext(ctx, "tcp", addr)
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
	nc.SetWriteDeadline(time.Now().Add(p.dialTimeout))
	opening, err := msgpack.Marshal(&p.hello)
	if err == nil {
		_, err = nc.Write(append([]byte{ConnByte}, opening...))
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("rpc dial %s: %w", addr, err)
	}
	nc.SetWriteDeadline(time.Time{})
	c := &clientConn{c: newCodec(nc), codes: p.codes, pending: make(map[uint64]*pendingCall)}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		nc.Close()
		return nil, ErrPoolClosed
	}
	if old, ok := p.conns[addr]; ok {
		nc.Close() // another caller dialled first
		return old, nil
	}
	p.conns[addr] = c
	p.readers.Add(1)
	go func() {
		defer p.readers.Done()
		c.readLoop()
	}()
	return c, nil
}

func (p *Pool) drop(addr string, c *clientConn) {
	p.mu.Lock()
	if p.conns[addr] == c {
		delete(p.conns, addr)
	}
	p.mu.Unlock()
	c.fail(errDropped)
}

// errDropped fails the calls in flight on a connection the pool dropped.
var errDropped = errors.New("connection dropped")

// Drop closes the connection to addr, if there is one: the calls in
// flight on it fail at once with a transport error, so their callers move
// to another server instead of waiting out their deadline. The agent drops
// a server's connection when gossip declares the server failed: a host
// that died sends no RST, and its calls would otherwise hang.
func (p *Pool) Drop(addr string) {
	p.mu.Lock()
	c, ok := p.conns[addr]
	delete(p.conns, addr)
	p.mu.Unlock()
	if ok {
		c.fail(errDropped)
	}
}

// Close closes every connection, failing the calls in flight, and waits
// for the connections' read loops to end.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[string]*clientConn{}
	p.mu.Unlock()
	for _, c := range conns {
		c.fail(ErrPoolClosed)
	}
	p.readers.Wait()
	return nil
}
