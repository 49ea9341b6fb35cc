package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	netrpc "net/rpc"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/internal/inflight"
	"github.com/meshd/meshd/node/rpc"
)

// silentServer accepts connections and never answers, like a leader whose
// host was killed between two heartbeats.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestCallLeaderAbandonsOnLeaderChange: a call forwarded to a leader that
// never answers ends as soon as the leader epoch ends, with a transport
// error (so onLeader asks the new leader), not at the call's 10 s deadline;
// the caller's own cancellation stays a context error.
func TestCallLeaderAbandonsOnLeaderChange(t *testing.T) {
	addr := silentServer(t)
	p := rpc.NewPool(time.Second, rpc.Hello{Node: "server2", Server: true})
	defer p.Close()
	s := &localServer{pool: p}

	epoch, endEpoch := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		var reply rpc.WriteResponse
		errc <- s.callLeader(context.Background(), epoch, addr, "Catalog.Register", &struct{}{}, &reply)
	}()
	endEpoch()
	select {
	case err := <-errc:
		if !errors.Is(err, errLeaderChanged) || !rpc.IsTransportError(err) {
			t.Fatalf("call when the leader changed = %v, want errLeaderChanged as a transport error", err)
		}
		t.Logf("abandoned after %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("the call outlived its leader epoch")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		var reply rpc.WriteResponse
		errc <- s.callLeader(ctx, context.Background(), addr, "Catalog.Register", &struct{}{}, &reply)
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || rpc.IsTransportError(err) {
			t.Fatalf("call whose caller gave up = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call outlived its caller")
	}
}

type recordingCodec struct {
	netrpc.ServerCodec
	got []string
}

func (c *recordingCodec) WriteResponse(r *netrpc.Response, _ any) error {
	c.got = append(c.got, r.Error)
	return nil
}

// TestStoppingCodec: once the agent stops, an error answer says so, which
// callers take as "try another server"; answers before that are untouched.
func TestStoppingCodec(t *testing.T) {
	rec := &recordingCodec{}
	stopping, stop := context.WithCancel(context.Background())
	c := stoppingCodec{rec, stopping}
	c.WriteResponse(&netrpc.Response{Error: "invalid request: Node: missing"}, nil)
	stop()
	c.WriteResponse(&netrpc.Response{Error: "context canceled"}, nil)
	c.WriteResponse(&netrpc.Response{Error: ErrShutdown.Error()}, nil)
	c.WriteResponse(&netrpc.Response{}, nil)
	want := []string{"invalid request: Node: missing", "agent shut down: context canceled", "agent shut down", ""}
	if !slices.Equal(rec.got, want) {
		t.Fatalf("answers = %q, want %q", rec.got, want)
	}
	err := fromRemote(&rpc.RemoteError{Msg: rec.got[1]})
	if !serverUnavailable(err) {
		t.Fatalf("%v: callers would not try another server", err)
	}
}

// TestWritePastItsBudgetIsDropped: a write taken over RPC carries the
// deadline its sender's budget set on receipt; one that waited past it (in
// a socket, behind a paused process) is dropped before it reaches Raft,
// because its sender has given up and may have written something newer
// since. One within its budget is applied.
func TestWritePastItsBudgetIsDropped(t *testing.T) {
	srv, store := startLoneServer(t)
	e := &catalogEndpoint{s: &localServer{raft: srv, store: store}, ctx: t.Context(), calls: &inflight.Tracker{}}

	late := &catalog.RegisterRequest{Node: "late", Address: "10.0.0.1"}
	late.SetDeadline(time.Now().Add(-time.Millisecond))
	var reply rpc.WriteResponse
	if err := e.Register(late, &reply); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a write past its budget returned %v, want the deadline's error", err)
	}
	onTime := &catalog.RegisterRequest{Node: "on-time", Address: "10.0.0.2"}
	onTime.SetDeadline(time.Now().Add(5 * time.Second))
	if err := e.Register(onTime, &reply); err != nil || reply.Index == 0 {
		t.Fatalf("a write within its budget: index %d, %v", reply.Index, err)
	}
	_, nodes, _ := store.Nodes(nil)
	if len(nodes) != 1 || nodes[0].Node != "on-time" {
		t.Fatalf("catalog holds %v, want only the write within its budget", nodes)
	}
}

// TestServerValidatesEveryRegistration: a registration that reaches a
// server over RPC (from an agent, or forwarded by another server) is
// checked as one over HTTP is, before it enters the log: refused with the
// field named, and nothing written.
func TestServerValidatesEveryRegistration(t *testing.T) {
	srv, store := startLoneServer(t)
	e := &catalogEndpoint{s: &localServer{raft: srv, store: store}, ctx: t.Context(), calls: &inflight.Tracker{}}
	svc := func(w catalog.Weights) *catalog.Service {
		return &catalog.Service{ID: "s", Service: "s", Port: 1, Weights: w}
	}
	check := func(c catalog.Check) []*catalog.Check { return []*catalog.Check{&c} }
	for _, tc := range []struct {
		req   catalog.RegisterRequest
		field string
	}{
		{catalog.RegisterRequest{Node: "n"}, "Address"},
		{catalog.RegisterRequest{Node: " ", Address: "10.0.0.1"}, "Node"},
		{catalog.RegisterRequest{Node: "n", Address: "10.0.0.1", Service: svc(catalog.Weights{Passing: -1})}, "Service.Weights"},
		{catalog.RegisterRequest{Node: "n", Address: "10.0.0.1", Service: &catalog.Service{Service: "s", Port: 70000}}, "Service.Port"},
		{catalog.RegisterRequest{Node: "n", Address: "10.0.0.1", Checks: check(catalog.Check{CheckID: "c", Status: "sick"})}, "Checks[0].Status"},
		{catalog.RegisterRequest{Node: "n", Address: "10.0.0.1", Checks: check(catalog.Check{CheckID: "c",
			Definition: catalog.CheckDefinition{TCP: "10.0.0.1:1", Interval: 10 * time.Millisecond}})}, "Checks[0].Definition.Interval"},
		{catalog.RegisterRequest{Node: "n", Address: "10.0.0.1", Checks: check(catalog.Check{CheckID: "c",
			Definition: catalog.CheckDefinition{HTTP: "nope", Interval: 10 * time.Second}})}, "Checks[0].Definition.HTTP"},
	} {
		before := srv.LastIndex()
		var reply rpc.WriteResponse
		err := e.Register(&tc.req, &reply)
		if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want ErrInvalid naming the field", tc.field, err)
		}
		if after := srv.LastIndex(); after != before {
			t.Errorf("%s: the refused registration entered the log (index %d → %d)", tc.field, before, after)
		}
	}
	if _, nodes, _ := store.Nodes(nil); len(nodes) != 0 {
		t.Fatalf("catalog holds %v after refused registrations", nodes)
	}
}

// startLoneServer starts a single-server Raft group on store, leading.
func startLoneServer(t *testing.T) (*consensus.Server, *catalog.Store) {
	t.Helper()
	store := catalog.NewStore()
	cfg := consensus.DefaultConfig()
	cfg.NodeID = "11111111-2222-3333-4444-555555555555"
	cfg.Advertise = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	cfg.Bootstrap = true
	cfg.Raft = consensus.DevRaftConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := consensus.New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	wctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for !srv.IsLeader() {
		if !sleepCtx(wctx, 5*time.Millisecond) {
			t.Fatal("no leader")
		}
	}
	return srv, store
}
