package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
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
