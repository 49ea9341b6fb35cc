package dns_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/meshd/meshd/catalog"
	meshdns "github.com/meshd/meshd/dns"
	"github.com/miekg/dns"
)

// reusingResolver is the fixture with answers that stay fresh until
// invalidate is called, counting the lookups that reach it.
type reusingResolver struct {
	*fakeResolver
	noReuse bool // return a nil fresh

	mu    sync.Mutex
	stale chan struct{}
	calls atomic.Int64
}

func (r *reusingResolver) ServiceInstancesFresh(ctx context.Context, q meshdns.ServiceLookup) ([]catalog.CheckServiceNode, func() bool, error) {
	r.calls.Add(1)
	insts, err := r.ServiceInstances(ctx, q)
	if err != nil || r.noReuse {
		return insts, nil, err
	}
	r.mu.Lock()
	ch := r.stale
	r.mu.Unlock()
	return insts, func() bool {
		select {
		case <-ch:
			return false
		default:
			return true
		}
	}, nil
}

func (r *reusingResolver) invalidate() {
	r.mu.Lock()
	close(r.stale)
	r.stale = make(chan struct{})
	r.mu.Unlock()
}

// TestReuseWhileFresh checks that a ReusingResolver is asked once per
// service, tag and datacenter while its answer is fresh, again after it
// goes stale, and every time when it gives no fresh func; and that the
// answers are the same either way.
func TestReuseWhileFresh(t *testing.T) {
	fx := newFixture()
	r := &reusingResolver{fakeResolver: fx, stale: make(chan struct{})}
	srv, err := meshdns.New(meshdns.DefaultConfig(), r)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		return srv.Handle(context.Background(), query(name, qtype), "tcp")
	}
	for range 5 {
		if resp := ask("web.service.consul.", dns.TypeA); len(resp.Answer) == 0 {
			t.Fatalf("no answer: %v", resp)
		}
		ask("web.service.consul.", dns.TypeSRV)
		ask("WEB.service.dc1.consul.", dns.TypeA)
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("resolver asked %d times for one fresh service, want 1", n)
	}
	ask("v1.web.service.consul.", dns.TypeA) // another tag: another set
	ask("nope.service.consul.", dns.TypeA)   // unknown: cached too
	ask("nope.service.consul.", dns.TypeA)
	if n := r.calls.Load(); n != 3 {
		t.Fatalf("resolver asked %d times, want 3", n)
	}
	r.invalidate()
	ask("web.service.consul.", dns.TypeA)
	ask("web.service.consul.", dns.TypeA)
	if n := r.calls.Load(); n != 4 {
		t.Fatalf("after invalidation resolver asked %d times in all, want 4", n)
	}

	// What the cache answers is what the plain path answers.
	plain, err := meshdns.New(meshdns.DefaultConfig(), newFixture())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web.service.consul.", "v1.web.service.consul.", "nope.service.consul."} {
		got, want := ask(name, dns.TypeA), plain.Handle(context.Background(), query(name, dns.TypeA), "tcp")
		if got.Rcode != want.Rcode || len(got.Answer) != len(want.Answer) {
			t.Errorf("%s: cached answer %d records rcode %d, plain %d records rcode %d",
				name, len(got.Answer), got.Rcode, len(want.Answer), want.Rcode)
		}
	}

	r.noReuse = true
	before := r.calls.Load()
	ask("db.service.consul.", dns.TypeA)
	ask("db.service.consul.", dns.TypeA)
	if n := r.calls.Load() - before; n != 2 {
		t.Fatalf("without a fresh func resolver asked %d times for 2 questions, want 2", n)
	}
}

// TestReuseSharedSetNotMutated runs many questions at once on one cached
// set and packs the replies: shuffling and single answers work on copies,
// and packing does not write to the shared records (run with -race).
func TestReuseSharedSetNotMutated(t *testing.T) {
	r := &reusingResolver{fakeResolver: newFixture(), stale: make(chan struct{})}
	srv, err := meshdns.New(meshdns.DefaultConfig(), r)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				name := "big.service.consul."
				if (g+i)%3 == 0 {
					name = "single.big.service.consul."
				}
				resp := srv.Handle(context.Background(), query(name, dns.TypeSRV), "udp")
				if len(resp.Answer) == 0 {
					t.Errorf("no answer for %s", name)
					return
				}
				// Packing reads the shared records while others do.
				if _, err := resp.Pack(); err != nil {
					t.Errorf("pack: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := r.calls.Load(); n > 8 {
		t.Errorf("resolver asked %d times for one fresh service", n)
	}
}
