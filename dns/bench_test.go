package dns_test

import (
	"context"
	"fmt"
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

func benchServer(b *testing.B, n int) *meshdns.Server {
	b.Helper()
	insts := make(staticResolver, n)
	for i, in := range manyInsts("bench", n, 4) {
		insts[i] = in.build("dc1", "web", i)
	}
	srv, err := meshdns.New(meshdns.DefaultConfig(), insts)
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

func benchHandle(b *testing.B, qtype uint16) {
	for _, n := range []int{10, 100} {
		for _, network := range []string{"udp", "tcp"} {
			b.Run(fmt.Sprintf("instances=%d/%s", n, network), func(b *testing.B) {
				srv := benchServer(b, n)
				req := query("web.service.consul.", qtype)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if resp := srv.Handle(ctx, req, network); len(resp.Answer) == 0 {
						b.Fatal("no answer")
					}
				}
			})
		}
	}
}

// BenchmarkHandleSRV measures an SRV answer with its additional records;
// over UDP it is truncated to 512 bytes.
func BenchmarkHandleSRV(b *testing.B) { benchHandle(b, dns.TypeSRV) }

// BenchmarkHandleA measures an A answer.
func BenchmarkHandleA(b *testing.B) { benchHandle(b, dns.TypeA) }
