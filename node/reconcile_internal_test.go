package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// startInternal starts a dev server agent on loopback for tests inside the
// package (nodetest imports node, so it cannot be used here).
func startInternal(t *testing.T) *Agent {
	t.Helper()
	zero, lo, name := 0, "127.0.0.1", "server1"
	opts := config.LoadOptions{Dev: true}
	opts.Flags.NodeName = &name
	opts.Flags.Ports.HTTP, opts.Flags.Ports.DNS, opts.Flags.Ports.Server, opts.Flags.Ports.SerfLAN = &zero, &zero, &zero, &zero
	opts.Flags.BindAddr, opts.Flags.ClientAddr = &lo, &lo
	cfg, _, err := config.Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestReconcileMembers(t *testing.T) {
	a := startInternal(t)
	ctx := context.Background()
	health := func(node string) string {
		t.Helper()
		res, err := server.NodeChecks.Call(ctx, a.servers, &rpc.NodeQuery{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Checks {
			if c.CheckID == catalog.SerfCheckID {
				return c.Status
			}
		}
		return ""
	}
	web := member{Name: "web-host", ID: "22222222-2222-2222-2222-222222222222", Addr: "10.0.0.7", Status: memberAlive}
	if err := a.reconcileMember(ctx, web); err != nil {
		t.Fatal(err)
	}
	if got := health("web-host"); got != catalog.HealthPassing {
		t.Fatalf("alive member: serfHealth %q", got)
	}
	// The member's own agent registers a service and node meta; the
	// leader's later writes must keep them.
	if _, err := server.Register.Call(ctx, a.servers, &catalog.RegisterRequest{Node: "web-host", Address: "10.0.0.7",
		NodeMeta: map[string]string{"rack": "r1"}, Service: &catalog.Service{Service: "web", Port: 80}}); err != nil {
		t.Fatal(err)
	}
	web.Status = memberFailed
	if err := a.reconcileMember(ctx, web); err != nil {
		t.Fatal(err)
	}
	if got := health("web-host"); got != catalog.HealthCritical {
		t.Fatalf("failed member: serfHealth %q", got)
	}
	res, _ := server.HealthServiceNodes.Call(ctx, a.servers, &rpc.ServiceQuery{Service: "web", PassingOnly: true})
	if len(res.Nodes) != 0 {
		t.Fatalf("instances of a failed node still passing: %d", len(res.Nodes))
	}
	ns, _ := server.NodeServices.Call(ctx, a.servers, &rpc.NodeQuery{Node: "web-host"})
	if ns.Node == nil || ns.Node.Meta["rack"] != "r1" {
		t.Fatalf("reconcile clobbered the node: %+v", ns.Node)
	}
	idx := ns.Index
	// Reconciling what is already so writes nothing.
	if err := a.reconcileMember(ctx, web); err != nil {
		t.Fatal(err)
	}
	if ns2, _ := server.NodeServices.Call(ctx, a.servers, &rpc.NodeQuery{Node: "web-host"}); ns2.Index != idx {
		t.Fatalf("an idle reconcile wrote: index %d -> %d", idx, ns2.Index)
	}

	web.Status = memberLeft
	if err := a.reconcileMember(ctx, web); err != nil {
		t.Fatal(err)
	}
	if ns, _ := server.NodeServices.Call(ctx, a.servers, &rpc.NodeQuery{Node: "web-host"}); ns.Node != nil {
		t.Fatal("a member that left is still registered")
	}

	// Agent nodes gossip forgot are reaped; external nodes are not.
	a.reconcileMember(ctx, member{Name: "ghost", Addr: "10.0.0.8", Status: memberAlive})
	server.Register.Call(ctx, a.servers, &catalog.RegisterRequest{Node: "external", Address: "10.0.0.9"})
	always := func(string) bool { return true }
	if err := a.reapUnknownNodes(ctx, map[string]bool{"server1": true}, always); err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]bool{"ghost": false, "external": true, "server1": true} {
		ns, _ := server.NodeServices.Call(ctx, a.servers, &rpc.NodeQuery{Node: node})
		if (ns.Node != nil) != want {
			t.Fatalf("after reaping unknown nodes, %s present = %v, want %v", node, ns.Node != nil, want)
		}
	}
}
