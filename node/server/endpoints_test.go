package server

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/consensus/consensustest"
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
	p := rpc.NewPool(time.Second, rpc.Hello{Node: "server2", Server: true}, Codes)
	defer p.Close()
	s := New(Config{Pool: p})

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

// TestStoppedAnswersAreUnavailable: an answer from a server whose stop
// cut the call short, by its code or (from an older build) its text, makes
// callers try another server; an answer that is the caller's own fault
// does not.
func TestStoppedAnswersAreUnavailable(t *testing.T) {
	for _, tc := range []struct {
		code, msg string
		want      bool
	}{
		{"shutdown", "agent shut down: context canceled", true},
		{"", "agent shut down: context canceled", true},
		{"not_leader", "not the raft leader: no reachable leader", true},
		{"", "not the raft leader: no reachable leader", true},
		{"invalid", "invalid request: Node: missing", false},
		{"", "context canceled", false},
	} {
		if got := Unavailable(Codes.Remote(tc.code, tc.msg)); got != tc.want {
			t.Errorf("%q %q: unavailable %v, want %v", tc.code, tc.msg, got, tc.want)
		}
	}
}

// TestLateWriteIsDropped: a write whose caller's time ran out before it
// reached Raft (on the wire, its budget turns into this deadline on
// receipt; behind a paused process it passes) is dropped, because its
// sender has given up and may have written something newer since. One
// within its time is applied.
func TestLateWriteIsDropped(t *testing.T) {
	_, store, d := startLoneServer(t)

	late, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Millisecond))
	defer cancel()
	if _, err := Register.Call(late, d, &catalog.RegisterRequest{Node: "late", Address: "10.0.0.1"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a write past its time returned %v, want the deadline's error", err)
	}
	onTime, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if reply, err := Register.Call(onTime, d, &catalog.RegisterRequest{Node: "on-time", Address: "10.0.0.2"}); err != nil || reply.Index == 0 {
		t.Fatalf("a write within its time: index %d, %v", reply.Index, err)
	}
	_, nodes, _ := store.Nodes(nil)
	if len(nodes) != 1 || nodes[0].Node != "on-time" {
		t.Fatalf("catalog holds %v, want only the write within its time", nodes)
	}
}

// TestServerValidatesEveryRegistration: a registration that reaches a
// server over RPC (from an agent, or forwarded by another server) is
// checked as one over HTTP is, before it enters the log: refused with the
// field named, and nothing written.
func TestServerValidatesEveryRegistration(t *testing.T) {
	srv, store, d := startLoneServer(t)
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
		_, err := Register.Call(t.Context(), d, &tc.req)
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

// startLoneServer starts a single-server Raft group, leading, and a
// Server of datacenter dc1 on it, bound to d.
func startLoneServer(t *testing.T) (srv *consensus.Server, store *catalog.Store, d *rpc.Server) {
	srv, store = consensustest.StartLone(t)
	d = rpc.NewServer(rpc.ServerConfig{Codes: Codes})
	New(Config{Raft: srv, Store: store, Datacenter: "dc1"}).Bind(d)
	return srv, store, d
}
