package wan

import (
	"context"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/internal/testkit"
)

func startPool(t *testing.T, node, dc string) *Pool {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeName, cfg.Datacenter, cfg.ServerPort = node, dc, 8300
	cfg.BindAddr, cfg.BindPort = "127.0.0.1", 0
	cfg.Tune = TestTimings
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

func addrOf(p *Pool) string {
	host, port := p.Addr()
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func TestPoolsOfTwoDatacenters(t *testing.T) {
	a := startPool(t, "s1", "dc1")
	b := startPool(t, "s1", "dc2") // the same node name in another datacenter
	c := startPool(t, "s2", "dc2")
	if got := a.LocalMember().Name; got != "s1.dc1" {
		t.Fatalf("member name %q, want s1.dc1", got)
	}
	if _, err := b.Join([]string{addrOf(a)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join([]string{addrOf(b)}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "three members everywhere", func() bool {
		return len(a.Members()) == 3 && len(b.Members()) == 3 && len(c.Members()) == 3
	})
	var names []string
	for _, m := range a.Members() {
		names = append(names, m.Name)
		if m.Tags.Role != gossip.RoleServer || m.Tags.ServerPort != 8300 {
			t.Errorf("member %s tags %+v, want a server with its RPC port", m.Name, m.Tags)
		}
	}
	if want := []string{"s1.dc1", "s1.dc2", "s2.dc2"}; !slices.Equal(names, want) {
		t.Fatalf("members %v, want %v", names, want)
	}
	r := a.Router()
	if got := r.Servers("dc2"); len(got) != 2 {
		t.Fatalf("Servers(dc2) = %v, want 2", got)
	}
	dcs := r.Datacenters()
	if !slices.Equal(dcs, []string{"dc1", "dc2"}) {
		t.Fatalf("Datacenters() = %v", dcs)
	}

	// A stopped datacenter is declared failed, and has no path any more.
	b.Shutdown(context.Background())
	c.Shutdown(context.Background())
	testkit.Eventually(t, 20*time.Second, "dc2 declared failed", func() bool { return len(r.Servers("dc2")) == 0 })
	if dcs := r.Datacenters(); !slices.Equal(dcs, []string{"dc1", "dc2"}) {
		t.Fatalf("a failed datacenter is still listed (until reaped): %v", dcs)
	}
}
