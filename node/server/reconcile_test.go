package server

import (
	"context"
	"testing"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/rpc"
)

// TestReconcileMembers: the leader's duties make the catalog agree with
// gossip, member by member, keeping what the member's agent registered,
// writing nothing when nothing changed, and reaping agent nodes gossip
// forgot but never external ones.
func TestReconcileMembers(t *testing.T) {
	srv, store, d := startLoneServer(t)
	l := NewDuties(DutiesConfig{NodeName: "server1", Datacenter: "dc1", Raft: srv, Store: store, Servers: d})
	ctx := context.Background()
	if err := l.reconcileMember(ctx, member{Name: "server1", Addr: "127.0.0.1", Status: memberAlive}); err != nil {
		t.Fatal(err)
	}
	health := func(node string) string {
		t.Helper()
		res, err := NodeChecks.Call(ctx, d, &rpc.NodeQuery{Node: node})
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
	if err := l.reconcileMember(ctx, web); err != nil {
		t.Fatal(err)
	}
	if got := health("web-host"); got != catalog.HealthPassing {
		t.Fatalf("alive member: serfHealth %q", got)
	}
	// The member's own agent registers a service and node meta; the
	// leader's later writes must keep them.
	if _, err := Register.Call(ctx, d, &catalog.RegisterRequest{Node: "web-host", Address: "10.0.0.7",
		NodeMeta: map[string]string{"rack": "r1"}, Service: &catalog.Service{Service: "web", Port: 80}}); err != nil {
		t.Fatal(err)
	}
	web.Status = memberFailed
	if err := l.reconcileMember(ctx, web); err != nil {
		t.Fatal(err)
	}
	if got := health("web-host"); got != catalog.HealthCritical {
		t.Fatalf("failed member: serfHealth %q", got)
	}
	res, err := HealthServiceNodes.Call(ctx, d, &rpc.ServiceQuery{Service: "web", PassingOnly: true})
	if err != nil || len(res.Nodes) != 0 {
		t.Fatalf("instances of a failed node still passing: %d", len(res.Nodes))
	}
	ns, _ := NodeServices.Call(ctx, d, &rpc.NodeQuery{Node: "web-host"})
	if ns.Node == nil || ns.Node.Meta["rack"] != "r1" {
		t.Fatalf("reconcile clobbered the node: %+v", ns.Node)
	}
	// Reconciling what is already so writes nothing: not even a check.
	idx := srv.LastIndex()
	if err := l.reconcileMember(ctx, web); err != nil {
		t.Fatal(err)
	}
	if after := srv.LastIndex(); after != idx {
		t.Fatalf("an idle reconcile wrote: log index %d -> %d", idx, after)
	}

	web.Status = memberLeft
	if err := l.reconcileMember(ctx, web); err != nil {
		t.Fatal(err)
	}
	if ns, _ := NodeServices.Call(ctx, d, &rpc.NodeQuery{Node: "web-host"}); ns.Node != nil {
		t.Fatal("a member that left is still registered")
	}

	// Agent nodes gossip forgot are reaped; external nodes are not.
	if err := l.reconcileMember(ctx, member{Name: "ghost", Addr: "10.0.0.8", Status: memberAlive}); err != nil {
		t.Fatal(err)
	}
	if _, err := Register.Call(ctx, d, &catalog.RegisterRequest{Node: "external", Address: "10.0.0.9"}); err != nil {
		t.Fatal(err)
	}
	always := func(string) bool { return true }
	if err := l.reapUnknownNodes(ctx, map[string]bool{"server1": true}, always); err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]bool{"ghost": false, "external": true, "server1": true} {
		ns, _ := NodeServices.Call(ctx, d, &rpc.NodeQuery{Node: node})
		if (ns.Node != nil) != want {
			t.Fatalf("after reaping unknown nodes, %s present = %v, want %v", node, ns.Node != nil, want)
		}
	}
}
