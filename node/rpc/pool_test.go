package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

type Echo struct{ release chan struct{} }

type EchoArgs struct {
	Text  string
	Block bool
}

type EchoReply struct{ Text string }

var errInvalid = errors.New("invalid request")

// testCodes are the sentinels the test server's answers carry.
var testCodes = Codes{{Name: "invalid", Err: errInvalid}}

var (
	echoSurface Surface[*Echo]
	echoSay     = Declare(&echoSurface, "Echo.Say", (*Echo).Say)
	clockLeft   = Declare(&echoSurface, "Clock.Left", (*Echo).Left)
)

func (e *Echo) Say(ctx context.Context, args *EchoArgs) (*EchoReply, error) {
	if args.Block {
		select {
		case <-e.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if args.Text == "fail" {
		return nil, fmt.Errorf("%w: Text: fail", errInvalid)
	}
	return &EchoReply{Text: "echo " + args.Text}, nil
}

// Left answers how long the call had left when the endpoint ran.
func (e *Echo) Left(ctx context.Context, _ *Empty) (*time.Duration, error) {
	dl, _ := ctx.Deadline()
	left := time.Until(dl)
	return &left, nil
}

// serve runs an RPC server the way the agent's server port does: read the
// first byte, then serve the connection.
func serve(t *testing.T, e *Echo) string { return serveAdmit(t, e, nil, nil) }

// serveAdmit is serve with admit deciding on each call; hellos, when not
// nil, hears each connection's hello.
func serveAdmit(t *testing.T, e *Echo, admit Admit, hellos chan<- Hello) string {
	t.Helper()
	addr, _ := serveServer(t, e, admit, hellos)
	return addr
}

// serveServer is serveAdmit returning the server too.
func serveServer(t *testing.T, e *Echo, admit Admit, hellos chan<- Hello) (string, *Server) {
	t.Helper()
	srv := NewServer(ServerConfig{Codes: testCodes, Stopped: errStopped})
	echoSurface.Bind(srv, e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := make([]byte, 1)
				if _, err := io.ReadFull(c, b); err != nil || b[0] != ConnByte {
					c.Close()
					return
				}
				srv.ServeConn(ctx, c, func(h Hello) Admit {
					if hellos != nil {
						hellos <- h
					}
					return admit
				})
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String(), srv
}

var errStopped = errors.New("server stopped")

func TestPoolCalls(t *testing.T) {
	e := &Echo{release: make(chan struct{})}
	addr := serve(t, e)
	p := NewPool(time.Second, Hello{Node: "client1"}, testCodes)
	defer p.Close()
	ctx := context.Background()

	var reply EchoReply
	if err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "hi"}, &reply); err != nil || reply.Text != "echo hi" {
		t.Fatalf("call = %q, %v", reply.Text, err)
	}
	// An endpoint's error is a RemoteError, not a transport failure.
	err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "fail"}, &reply)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "invalid request: Text: fail" || re.Code != "invalid" ||
		!errors.Is(err, errInvalid) || IsTransportError(err) {
		t.Fatalf("endpoint error = %#v", err)
	}
	// An unknown method is an answer too, with a code of its own.
	err = p.Call(ctx, addr, "Echo.Nope", &EchoArgs{}, &reply)
	if !errors.Is(err, ErrUnknownMethod) || IsTransportError(err) {
		t.Fatalf("unknown method = %#v", err)
	}

	// Calls pipeline on one connection: a blocked call does not hold up
	// others, and it completes when released.
	done := make(chan error, 1)
	go func() {
		var r EchoReply
		done <- p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "slow", Block: true}, &r)
	}()
	for i := range 20 {
		var r EchoReply
		if err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "fast"}, &r); err != nil {
			t.Fatalf("call %d behind a blocked one: %v", i, err)
		}
	}
	close(e.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A caller that gives up gets its context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Call(cctx, addr, "Echo.Say", &EchoArgs{Text: "x"}, &reply); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call = %v", err)
	}
}

func TestPoolRedialsAfterFailure(t *testing.T) {
	p := NewPool(time.Second, Hello{Node: "client1"}, testCodes)
	defer p.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens yet
	var reply EchoReply
	err = p.Call(context.Background(), addr, "Echo.Say", &EchoArgs{Text: "x"}, &reply)
	if !IsTransportError(err) {
		t.Fatalf("call to a closed port = %v, want a transport error", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Call(context.Background(), addr, "Echo.Say", &EchoArgs{}, &reply); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("call after Close = %v", err)
	}
}

// TestAdmit: the server hears the caller's hello; a refused call gets the
// refusal as its answer and the connection carries on; done runs once the
// call returns, so a blocked call holds its slot until then and no longer.
func TestAdmit(t *testing.T) {
	e := &Echo{release: make(chan struct{})}
	var (
		mu        sync.Mutex
		open      int
		maxOpen   = 1
		blockedIn = make(chan struct{})
	)
	admit := func(method string, args any) (func(), error) {
		if a, ok := args.(*EchoArgs); ok && a.Text == "refuse" {
			return nil, errors.New("too many requests: " + method)
		}
		mu.Lock()
		defer mu.Unlock()
		if open == maxOpen {
			return nil, errors.New("too many open calls")
		}
		open++
		if a, ok := args.(*EchoArgs); ok && a.Block {
			close(blockedIn)
		}
		return func() { mu.Lock(); open--; mu.Unlock() }, nil
	}
	hellos := make(chan Hello, 1)
	addr := serveAdmit(t, e, admit, hellos)
	p := NewPool(time.Second, Hello{Node: "client1", Server: true}, testCodes)
	defer p.Close()
	ctx := context.Background()

	var reply EchoReply
	err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "refuse"}, &reply)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "too many requests: Echo.Say" {
		t.Fatalf("refused call = %v", err)
	}
	if h := <-hellos; h != (Hello{Node: "client1", Server: true}) {
		t.Fatalf("hello %+v", h)
	}
	if err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "a"}, &reply); err != nil || reply.Text != "echo a" {
		t.Fatalf("call after a refusal = %q, %v", reply.Text, err)
	}
	done := make(chan error, 1)
	go func() {
		var r EchoReply
		done <- p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "slow", Block: true}, &r)
	}()
	<-blockedIn
	// While the slow call holds the only slot, others are refused.
	if err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "b"}, &reply); !errors.As(err, &re) || re.Msg != "too many open calls" {
		t.Fatalf("a call while the slot is held = %v", err)
	}
	close(e.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "c"}, &reply); err != nil {
		t.Fatalf("the slot was not released: %v", err)
	}
}

// TestPoolDropFailsCallsInFlight: a server that stops answering (a host
// that died sends no RST) holds its calls until Drop, which the agent calls
// when gossip declares the server failed; they then fail at once with a
// transport error, and the next call dials again.
func TestPoolDropFailsCallsInFlight(t *testing.T) {
	e := &Echo{release: make(chan struct{})}
	addr := serve(t, e)
	defer close(e.release)
	p := NewPool(time.Second, Hello{Node: "client1"}, testCodes)
	defer p.Close()

	errc := make(chan error, 1)
	go func() {
		var reply EchoReply
		errc <- p.Call(context.Background(), addr, "Echo.Say", &EchoArgs{Text: "x", Block: true}, &reply)
	}()
	// Drop only once the call holds the connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		_, dialled := p.conns[addr]
		p.mu.Unlock()
		if dialled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the call never dialled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Drop(addr)
	select {
	case err := <-errc:
		if !IsTransportError(err) {
			t.Fatalf("call in flight on a dropped connection = %v, want a transport error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drop did not end the call in flight")
	}
	var reply EchoReply
	if err := p.Call(context.Background(), addr, "Echo.Say", &EchoArgs{Text: "again"}, &reply); err != nil || reply.Text != "echo again" {
		t.Fatalf("call after Drop = %q, %v", reply.Text, err)
	}
	p.Drop("127.0.0.1:1") // nothing to drop: no effect
}

// TestCallBudget: a call carries what is left of its caller's time, and
// the receiving server turns it into a deadline of its own on receipt (no
// clocks compared between hosts); without a deadline of its own a call
// carries its call timeout.
func TestCallBudget(t *testing.T) {
	addr := serve(t, &Echo{})
	p := NewPool(time.Second, Hello{Node: "client1"}, testCodes)
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var left time.Duration
	if err := p.Call(ctx, addr, clockLeft.Name(), &Empty{}, &left); err != nil {
		t.Fatal(err)
	}
	if left <= 2*time.Second || left > 3*time.Second {
		t.Fatalf("a call with 3 s left arrived with %v left", left)
	}
	if err := p.Call(context.Background(), addr, clockLeft.Name(), &Empty{}, &left); err != nil {
		t.Fatal(err)
	}
	if left <= DefaultCallTimeout-time.Second || left > DefaultCallTimeout {
		t.Fatalf("a call without a deadline arrived with %v left, want about %v", left, DefaultCallTimeout)
	}
	t.Logf("budget at the endpoint: %v", left)
}
