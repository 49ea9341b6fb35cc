package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"net/rpc"
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

func (e *Echo) Say(args *EchoArgs, reply *EchoReply) error {
	if args.Block {
		<-e.release
	}
	if args.Text == "fail" {
		return errors.New("invalid request: Text: fail")
	}
	reply.Text = "echo " + args.Text
	return nil
}

// serve runs an RPC server the way the agent's server port does: read the
// first byte and the hello, then serve the codec.
func serve(t *testing.T, e *Echo) string { return serveAdmit(t, e, nil, nil) }

// serveAdmit is serve with admit deciding on each call; hellos, when not
// nil, hears each connection's hello.
func serveAdmit(t *testing.T, e *Echo, admit Admit, hellos chan<- Hello) string {
	t.Helper()
	return serveReceiver(t, "Echo", e, admit, hellos)
}

// serveWith serves rcvr under name.
func serveWith(t *testing.T, name string, rcvr any) string {
	t.Helper()
	return serveReceiver(t, name, rcvr, nil, nil)
}

func serveReceiver(t *testing.T, name string, rcvr any, admit Admit, hellos chan<- Hello) string {
	t.Helper()
	srv := rpc.NewServer()
	if err := srv.RegisterName(name, rcvr); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
				codec, err := Accept(c, func(h Hello) Admit {
					if hellos != nil {
						hellos <- h
					}
					return admit
				})
				if err != nil {
					c.Close()
					return
				}
				srv.ServeCodec(codec)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestPoolCalls(t *testing.T) {
	e := &Echo{release: make(chan struct{})}
	addr := serve(t, e)
	p := NewPool(time.Second, Hello{Node: "client1"})
	defer p.Close()
	ctx := context.Background()

	var reply EchoReply
	if err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "hi"}, &reply); err != nil || reply.Text != "echo hi" {
		t.Fatalf("call = %q, %v", reply.Text, err)
	}
	// An endpoint's error is a RemoteError, not a transport failure.
	err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Text: "fail"}, &reply)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "invalid request: Text: fail" || IsTransportError(err) {
		t.Fatalf("endpoint error = %v", err)
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
	p := NewPool(time.Second, Hello{Node: "client1"})
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
	p := NewPool(time.Second, Hello{Node: "client1", Server: true})
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
	p := NewPool(time.Second, Hello{Node: "client1"})
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
		_, dialled := p.clients[addr]
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

// DeadlineArgs takes the deadline its sender's budget sets.
type DeadlineArgs struct {
	deadline time.Time
}

func (a *DeadlineArgs) SetDeadline(t time.Time) { a.deadline = t }

type Clock struct{}

// Left answers how long the request had left when the endpoint ran: -1
// when it arrived without a deadline.
func (Clock) Left(args *DeadlineArgs, reply *time.Duration) error {
	*reply = -1
	if !args.deadline.IsZero() {
		*reply = time.Until(args.deadline)
	}
	return nil
}

// TestCallBudget: a call carries what is left of its caller's time, and
// the receiving server turns it into a deadline of its own on receipt (no
// clocks compared between hosts); without a deadline of its own a call
// carries its call timeout.
func TestCallBudget(t *testing.T) {
	addr := serveWith(t, "Clock", Clock{})
	p := NewPool(time.Second, Hello{Node: "client1"})
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var left time.Duration
	if err := p.Call(ctx, addr, "Clock.Left", &DeadlineArgs{}, &left); err != nil {
		t.Fatal(err)
	}
	if left <= 2*time.Second || left > 3*time.Second {
		t.Fatalf("a call with 3 s left arrived with %v left", left)
	}
	if err := p.Call(context.Background(), addr, "Clock.Left", &DeadlineArgs{}, &left); err != nil {
		t.Fatal(err)
	}
	if left <= DefaultCallTimeout-time.Second || left > DefaultCallTimeout {
		t.Fatalf("a call without a deadline arrived with %v left, want about %v", left, DefaultCallTimeout)
	}
	t.Logf("budget at the endpoint: %v", left)
}
