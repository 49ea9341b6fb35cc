package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/nodetest"
	"github.com/meshd/meshd/node/rpc"
)

// The server port answers the internal RPC: writes, blocking reads and
// errors that keep their meaning.
func TestServerRPC(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	p := rpc.NewPool(5 * time.Second)
	defer p.Close()
	ctx := context.Background()
	addr := a.ServerAddr()

	var w rpc.WriteResponse
	reg := &catalog.RegisterRequest{Node: "ext", Address: "10.0.0.1",
		Service: &catalog.Service{ID: "db-1", Service: "db", Port: 5432}}
	if err := p.Call(ctx, addr, "Catalog.Register", reg, &w); err != nil || w.Index == 0 {
		t.Fatalf("Catalog.Register = %d, %v", w.Index, err)
	}
	var res rpc.CheckServiceNodesResponse
	if err := p.Call(ctx, addr, "Health.ServiceNodes", &rpc.ServiceQuery{Service: "db"}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Nodes) != 1 || res.Nodes[0].Service.Port != 5432 || res.Index != w.Index || !res.KnownLeader {
		t.Fatalf("Health.ServiceNodes = %+v", res)
	}

	// A blocking read returns when its service changes.
	done := make(chan rpc.CheckServiceNodesResponse, 1)
	go func() {
		var r rpc.CheckServiceNodesResponse
		p.Call(ctx, addr, "Health.ServiceNodes", &rpc.ServiceQuery{Service: "db",
			QueryOptions: rpc.QueryOptions{MinIndex: res.Index, MaxWait: time.Minute}}, &r)
		done <- r
	}()
	reg.Service.Port = 5433
	if err := p.Call(ctx, addr, "Catalog.Register", reg, &w); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Index != w.Index || r.Nodes[0].Service.Port != 5433 {
			t.Fatalf("blocking read = %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking read over RPC never returned")
	}

	// A refused write is an answer with its meaning: invalid request.
	err := p.Call(ctx, addr, "Catalog.Register", &catalog.RegisterRequest{Node: "ext", Service: &catalog.Service{Port: 1}}, &w)
	var re *rpc.RemoteError
	if !errors.As(err, &re) || rpc.IsTransportError(err) {
		t.Fatalf("refused write = %v", err)
	}
}
