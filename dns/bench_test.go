package dns_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/meshd/meshd/catalog"
	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// staticResolver returns the same instances for every service.
type staticResolver []catalog.CheckServiceNode

func (r staticResolver) ServiceInstances(context.Context, meshdns.ServiceLookup) ([]catalog.CheckServiceNode, error) {
	return r, nil
}

func (r staticResolver) Node(context.Context, string, string) (*catalog.Node, error) {
	return r[0].Node, nil
}

func (r staticResolver) ReverseLookup(context.Context, netip.Addr) (meshdns.Reverse, error) {
	return meshdns.Reverse{Nodes: []string{r[0].Node.Node}}, nil
}

func (r staticResolver) NameServers(context.Context) ([]meshdns.NameServer, error) {
	return nil, nil
}

// reusableStatic is staticResolver with answers that never go stale, as
// a server's catalog between changes: the Server answers from prebuilt
// records.
type reusableStatic struct{ staticResolver }

func (r reusableStatic) ServiceInstancesFresh(context.Context, meshdns.ServiceLookup) ([]catalog.CheckServiceNode, func() bool, error) {
	return r.staticResolver, func() bool { return true }, nil
}

func benchServer(b *testing.B, n int, reuse bool) *meshdns.Server {
	b.Helper()
	insts := make(staticResolver, n)
	for i, in := range manyInsts("bench", n, 4) {
		insts[i] = in.build("dc1", "web", i)
	}
	var r meshdns.Resolver = insts
	if reuse {
		r = reusableStatic{insts}
	}
	srv, err := meshdns.New(meshdns.DefaultConfig(), r)
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// benchHandle measures Handle and packing the reply, as the server does
// before writing it, building every answer (reuse=false) or from
// prebuilt records (reuse=true).
func benchHandle(b *testing.B, qtype uint16) {
	for _, reuse := range []bool{false, true} {
		for _, n := range []int{10, 100} {
			for _, network := range []string{"udp", "tcp"} {
				benchOne(b, qtype, reuse, n, network)
			}
		}
	}
}

func benchOne(b *testing.B, qtype uint16, reuse bool, n int, network string) {
	b.Run(fmt.Sprintf("reuse=%v/instances=%d/%s", reuse, n, network), func(b *testing.B) {
		srv := benchServer(b, n, reuse)
		req := query("web.service.consul.", qtype)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			resp := srv.Handle(ctx, req, network)
			if len(resp.Answer) == 0 {
				b.Fatal("no answer")
			}
			if _, err := resp.Pack(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHandleSRV measures an SRV answer with its additional records;
// over UDP it is truncated to 512 bytes.
func BenchmarkHandleSRV(b *testing.B) { benchHandle(b, dns.TypeSRV) }

// BenchmarkHandleA measures an A answer.
func BenchmarkHandleA(b *testing.B) { benchHandle(b, dns.TypeA) }
