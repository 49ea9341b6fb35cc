package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/miekg/dns"
)

type nopResolver struct{}

func (nopResolver) ServiceInstances(context.Context, ServiceLookup) ([]catalog.CheckServiceNode, error) {
	return nil, nil
}

func (nopResolver) Node(context.Context, string, string) (*catalog.Node, error) { return nil, nil }

func (nopResolver) ReverseLookup(context.Context, netip.Addr) (Reverse, error) { return Reverse{}, nil }

func (nopResolver) NameServers(context.Context) ([]NameServer, error) { return nil, nil }

// TestShutdownWhileStarting holds ServeUDP and ServeTCP between
// registering their server and starting it until Shutdown is about to stop
// them: Shutdown must wait for the start (miekg/dns refuses to stop a
// server that has not started, which then serves forever), stop them, and
// both Serve calls must return nil.
func TestShutdownWhileStarting(t *testing.T) {
	for range 20 {
		s, err := New(DefaultConfig(), nopResolver{})
		if err != nil {
			t.Fatal(err)
		}
		stoppingCh := make(chan struct{})
		registeredCh := make(chan struct{}, 2)
		s.beforeActivate = func() {
			registeredCh <- struct{}{}
			<-stoppingCh
		}
		// Both stop goroutines pass here; the first releases both servers,
		// so they start while Shutdown is already stopping them.
		var once sync.Once
		s.beforeStop = func() { once.Do(func() { close(stoppingCh) }) }

		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveCh := make(chan error, 2)
		go func() { serveCh <- s.ServeUDP(pc) }()
		go func() { serveCh <- s.ServeTCP(l) }()
		for range 2 {
			<-registeredCh
		}

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		shutdownCh := make(chan error, 1)
		go func() { shutdownCh <- s.Shutdown(ctx) }()
		select {
		case err := <-shutdownCh:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown hung: a server started after it was stopped")
		}
		for range 2 {
			select {
			case err := <-serveCh:
				if err != nil && !errors.Is(err, ErrServerClosed) {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return")
			}
		}
		cancel()
		if t.Failed() {
			return
		}
	}
}

// TestServeUDPBoundAndWildcard answers over a socket bound to 127.0.0.1
// (read as a plain PacketConn) and over one bound to the wildcard address
// (read with control messages, so replies leave from the address asked).
func TestServeUDPBoundAndWildcard(t *testing.T) {
	for _, tc := range []struct {
		bind  string
		plain bool
	}{{"127.0.0.1:0", true}, {"0.0.0.0:0", false}} {
		t.Run(tc.bind, func(t *testing.T) {
			pc, err := net.ListenPacket("udp4", tc.bind)
			if err != nil {
				t.Fatal(err)
			}
			if _, plain := plainWhenBound(pc).(boundPacketConn); plain != tc.plain {
				t.Fatalf("plainWhenBound(%s) plain = %v, want %v", tc.bind, plain, tc.plain)
			}
			s, err := New(DefaultConfig(), nopResolver{})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.ServeUDP(pc) }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := s.Shutdown(ctx); err != nil {
					t.Error(err)
				}
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port))
			req := new(dns.Msg)
			req.SetQuestion("consul.", dns.TypeSOA)
			c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			// The server may not be reading yet: retry until a deadline.
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, _, err := c.Exchange(req, addr)
				if err == nil {
					if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
						t.Fatalf("SOA answer %v", resp)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no answer from %s: %v", addr, err)
				}
			}
		})
	}
}
