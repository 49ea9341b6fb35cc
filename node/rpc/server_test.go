package rpc

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestInProcessCall: a Method called through the Server itself runs the
// same handler as a remote call, with the same errors.
func TestInProcessCall(t *testing.T) {
	srv := NewServer(ServerConfig{Codes: testCodes})
	echoSurface.Bind(srv, &Echo{})
	reply, err := echoSay.Call(t.Context(), srv, &EchoArgs{Text: "hi"})
	if err != nil || reply.Text != "echo hi" {
		t.Fatalf("in-process call = %+v, %v", reply, err)
	}
	if _, err := echoSay.Call(t.Context(), srv, &EchoArgs{Text: "fail"}); !errors.Is(err, errInvalid) {
		t.Fatalf("in-process error = %v", err)
	}
	var r EchoReply
	if err := srv.Call(t.Context(), "Echo.Nope", &EchoArgs{}, &r); !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("unknown method in-process = %v", err)
	}
}

// TestRemoteCall: a Method called through a Pool-backed Caller reaches the
// server; its typed answer and its error codes come back.
func TestRemoteCall(t *testing.T) {
	addr := serve(t, &Echo{})
	p := NewPool(time.Second, Hello{Node: "client1"}, testCodes)
	defer p.Close()
	c := callerFunc(func(ctx context.Context, method string, req, resp any) error {
		return p.Call(ctx, addr, method, req, resp)
	})
	reply, err := echoSay.Call(t.Context(), c, &EchoArgs{Text: "there"})
	if err != nil || reply.Text != "echo there" {
		t.Fatalf("remote call = %+v, %v", reply, err)
	}
	if _, err := echoSay.Call(t.Context(), c, &EchoArgs{Text: "fail"}); !errors.Is(err, errInvalid) {
		t.Fatalf("remote error = %v", err)
	}
}

type callerFunc func(ctx context.Context, method string, req, resp any) error

func (f callerFunc) Call(ctx context.Context, method string, req, resp any) error {
	return f(ctx, method, req, resp)
}

// TestOlderServerErrors: an answer without a code, as servers of older
// builds sent, still unwraps to the sentinel its text starts with.
func TestOlderServerErrors(t *testing.T) {
	err := testCodes.Remote("", "invalid request: Service: missing name")
	if !errors.Is(err, errInvalid) {
		t.Fatalf("text-only error %v does not unwrap to its sentinel", err)
	}
	if err := testCodes.Remote("", "something else"); errors.Unwrap(err) != nil {
		t.Fatalf("unmatched text unwraps to %v", errors.Unwrap(err))
	}
	if err := testCodes.Remote("", "rpc: can't find method Catalog.New"); !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("net/rpc's unknown method = %v", err)
	}
	// A code wins over the text.
	if err := testCodes.Remote("invalid", "whatever the text"); !errors.Is(err, errInvalid) {
		t.Fatalf("coded error = %v", err)
	}
}

// TestClosedConnectionEndsItsCalls: a call whose connection is gone is
// cancelled (a blocking query left by its caller frees its slot), and
// Shutdown waits for it.
func TestClosedConnectionEndsItsCalls(t *testing.T) {
	e := &Echo{release: make(chan struct{})}
	entered, ended := make(chan struct{}), make(chan struct{})
	admit := func(method string, args any) (func(), error) {
		close(entered)
		return func() { close(ended) }, nil
	}
	addr, srv := serveServer(t, e, admit, nil)
	p := NewPool(time.Second, Hello{Node: "c"}, testCodes)
	defer p.Close()
	errc := make(chan error, 1)
	go func() {
		var r EchoReply
		errc <- p.Call(context.Background(), addr, echoSay.Name(), &EchoArgs{Text: "x", Block: true}, &r)
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the server")
	}
	p.Close() // the caller's side of the connection goes
	if err := <-errc; !IsTransportError(err) {
		t.Fatalf("call on a closed pool = %v", err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's call did not end with its connection")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStoppedServerErrors: a call that fails because the server stopped
// answers with the Stopped error (and its code), so callers try another.
func TestStoppedServerErrors(t *testing.T) {
	srv := NewServer(ServerConfig{Codes: append(Codes{{Name: "stopped", Err: errStopped}}, testCodes...), Stopped: errStopped})
	echoSurface.Bind(srv, &Echo{release: make(chan struct{})})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	out, err := srv.serve(ctx, ctx, mustLookup(t, srv, "Echo.Say"), &header{}, &EchoArgs{Block: true})
	if !errors.Is(err, errStopped) || out == nil {
		t.Fatalf("call cut short by a stop = %v", err)
	}
	if got := srv.cfg.Codes.nameOf(err); got != "stopped" {
		t.Fatalf("code %q", got)
	}
}

func mustLookup(t *testing.T, srv *Server, name string) handler {
	t.Helper()
	h, ok := srv.lookup(name)
	if !ok {
		t.Fatalf("%s not bound", name)
	}
	return h
}
