package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Errors returned by this package; compare with errors.Is.
var (
	// ErrInvalidConfig wraps every Config.Validate failure.
	ErrInvalidConfig = errors.New("dns: invalid config")
	// ErrNilResolver is returned by New without a Resolver.
	ErrNilResolver = errors.New("dns: nil resolver")
	// ErrNilConn is returned by ServeUDP and ServeTCP without a socket.
	ErrNilConn = errors.New("dns: nil socket")
	// ErrServerClosed is returned by ServeUDP and ServeTCP called after
	// Shutdown.
	ErrServerClosed = errors.New("dns: server closed")

	// errBadReply is a recursor's reply that does not answer our
	// question; it is logged, never returned.
	errBadReply = errors.New("reply does not match the question")
)

// Server answers DNS questions from a Resolver. Create it with New, hand it
// sockets with ServeUDP and ServeTCP, stop it with Shutdown. Its methods
// are safe for concurrent use.
type Server struct {
	cfg      Config
	resolver Resolver
	logger   *slog.Logger
	// zones are Domain's and AltDomain's, the one with more labels first
	// so that a name in both belongs to the inner zone; primary is
	// Domain's, the zone of reverse answers.
	zones   []*zone
	primary *zone
	// ttls is cfg.ServiceTTL and cfg.ServiceTTLs digested, recursors
	// cfg.Recursors in canonical ip:port form: the Server reads neither
	// from cfg, so the caller may reuse its map and slice.
	ttls      serviceTTLs
	recursors []string
	nodeTTL   uint32
	// cache keeps healthy instance sets while the resolver says they are
	// fresh (ReusingResolver).
	cache healthyCache
	// packBufs holds *[]byte buffers of maxUDPSize for packing answers
	// (PackBuffer allocates a larger one itself when an answer needs it).
	packBufs sync.Pool

	// baseCtx is the parent of every Resolver call made while serving; it
	// is cancelled by Shutdown once it stops waiting for them.
	baseCtx    context.Context
	baseCancel context.CancelFunc

	// servingMu guards closed and serving.
	servingMu sync.Mutex
	closed    bool
	// serving holds the miekg servers running, or, once closed, the ones
	// Shutdown is stopping.
	serving map[*listener]struct{}

	// Test hooks, nil in production: beforeActivate runs in serve between
	// registering a listener and starting it, beforeStop in Shutdown just
	// before it waits for a listener to start. They let a test hold a
	// listener in its "registered, not started" state.
	beforeActivate func()
	beforeStop     func()
}

// listener is one ServeUDP or ServeTCP call.
type listener struct {
	srv *dns.Server
	// startedCh closes when srv accepts (NotifyStartedFunc): only then can
	// srv be shut down, so Shutdown never races a server still starting.
	startedCh chan struct{}
	// doneCh closes when srv has returned, its goroutines finished.
	doneCh chan struct{}
}

// New validates cfg and returns a Server answering from r. It opens no
// socket and starts no goroutine.
func New(cfg Config, r Resolver) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, ErrNilResolver
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	primary := newZone(cfg.Domain)
	zones := []*zone{primary}
	if cfg.AltDomain != "" {
		alt := newZone(cfg.AltDomain)
		if alt.labels > primary.labels {
			zones = []*zone{alt, primary}
		} else {
			zones = append(zones, alt)
		}
	}
	recursors := make([]string, len(cfg.Recursors))
	for i, r := range cfg.Recursors {
		recursors[i] = netip.MustParseAddrPort(r).String() // validated
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:        cfg,
		resolver:   r,
		logger:     logger.With("component", "dns"),
		zones:      zones,
		primary:    primary,
		ttls:       newServiceTTLs(cfg.ServiceTTL, cfg.ServiceTTLs),
		nodeTTL:    ttlSeconds(cfg.NodeTTL),
		recursors:  recursors,
		baseCtx:    ctx,
		baseCancel: cancel,
		serving:    make(map[*listener]struct{}),
	}, nil
}

// ServeUDP answers queries arriving on pc until Shutdown, then returns nil;
// it blocks like net/http's Serve and closes pc when it returns. Called
// after Shutdown it closes pc and returns ErrServerClosed.
func (s *Server) ServeUDP(pc net.PacketConn) error {
	if pc == nil {
		return fmt.Errorf("serve udp: %w", ErrNilConn)
	}
	// UDPSize is the read buffer: room for any query a client may send.
	srv := &dns.Server{PacketConn: plainWhenBound(pc), Net: "udp", UDPSize: dns.DefaultMsgSize}
	return s.serve(srv, pc.Close, "udp", pc.LocalAddr())
}

// boundPacketConn hides a *net.UDPConn's type from miekg/dns.
type boundPacketConn struct{ net.PacketConn }

// plainWhenBound returns pc so that miekg/dns reads it as a plain
// net.PacketConn when it is bound to one specific address. Given a
// *net.UDPConn, miekg reads every packet with its control messages to
// learn which local address it came to, so that a socket bound to a
// wildcard address answers from the right one; that costs several
// allocations per query. A socket bound to one address always answers
// from it, so the control messages buy nothing there.
func plainWhenBound(pc net.PacketConn) net.PacketConn {
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok && ua.IP != nil && !ua.IP.IsUnspecified() {
		return boundPacketConn{pc}
	}
	return pc
}

// ServeTCP answers queries on connections accepted from l until Shutdown,
// then returns nil; it blocks like net/http's Serve and closes l when it
// returns. Called after Shutdown it closes l and returns ErrServerClosed.
func (s *Server) ServeTCP(l net.Listener) error {
	if l == nil {
		return fmt.Errorf("serve tcp: %w", ErrNilConn)
	}
	srv := &dns.Server{Listener: l, Net: "tcp"}
	return s.serve(srv, l.Close, "tcp", l.Addr())
}

func (s *Server) serve(srv *dns.Server, closeSock func() error, network string, addr net.Addr) error {
	ln := &listener{srv: srv, startedCh: make(chan struct{}), doneCh: make(chan struct{})}
	srv.Handler = s
	srv.NotifyStartedFunc = func() { close(ln.startedCh) }

	s.servingMu.Lock()
	if s.closed {
		s.servingMu.Unlock()
		_ = closeSock()
		return ErrServerClosed
	}
	s.serving[ln] = struct{}{}
	s.servingMu.Unlock()

	s.logger.Info("serving", "network", network, "addr", addr.String())
	if s.beforeActivate != nil {
		s.beforeActivate()
	}
	err := srv.ActivateAndServe()
	_ = closeSock() // already closed unless srv failed to start
	close(ln.doneCh)

	s.servingMu.Lock()
	if !s.closed {
		delete(s.serving, ln)
	}
	s.servingMu.Unlock()

	if err != nil {
		s.logger.Error("serve failed", "network", network, "addr", addr.String(), "err", err)
		return fmt.Errorf("serve %s: %w", network, err)
	}
	return nil
}

// Shutdown stops the servers started by ServeUDP and ServeTCP: they stop
// reading at once, and Shutdown waits for the queries in flight. When ctx
// ends first, Shutdown cancels the contexts of the Resolver calls still
// running, waits for them to return (a Resolver that ignores ctx holds it
// up), and returns ctx's error. Either way the Serve calls have returned
// when Shutdown does.
//
// Shutdown is idempotent: a later call waits for the first one's work to
// finish, or for its own ctx, and returns nil or ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.servingMu.Lock()
	first := !s.closed
	s.closed = true
	lns := make([]*listener, 0, len(s.serving))
	for ln := range s.serving {
		lns = append(lns, ln)
	}
	s.servingMu.Unlock()

	if !first {
		for _, ln := range lns {
			select {
			case <-ln.doneCh:
				continue // done beats an ended ctx
			default:
			}
			select {
			case <-ln.doneCh:
			case <-ctx.Done():
				return fmt.Errorf("shutdown: %w", ctx.Err())
			}
		}
		return nil
	}

	var (
		errMu    sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for _, ln := range lns {
		wg.Go(func() {
			if s.beforeStop != nil {
				s.beforeStop()
			}
			// ActivateAndServe marks the server started and calls
			// NotifyStartedFunc without blocking in between, so this wait
			// is short; it needs no ctx.
			select {
			case <-ln.startedCh:
			case <-ln.doneCh:
				return // failed before starting: nothing to stop
			}
			if err := ln.srv.ShutdownContext(ctx); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	// Every query has finished, or ctx ended: cancel the Resolver calls
	// left so that the wait below ends.
	s.baseCancel()
	for _, ln := range lns {
		<-ln.doneCh
	}
	if firstErr != nil {
		return fmt.Errorf("shutdown: %w", firstErr)
	}
	return nil
}

// ServeDNS implements miekg/dns's Handler, so the Server can also sit
// behind another dns.Server or mux. It answers with Handle, using the
// network of w, and turns a panic into SERVFAIL rather than a crash.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("panic answering query", "panic", p)
			resp := new(dns.Msg)
			resp.SetRcodeFormatError(req)
			resp.Rcode = dns.RcodeServerFailure
			_ = w.WriteMsg(resp)
		}
	}()
	network := "udp"
	if addr := w.LocalAddr(); addr != nil {
		network = transport(addr.Network())
	}
	start := time.Now()
	resp := s.Handle(s.baseCtx, req, network)
	if s.cfg.Observe != nil {
		var qtype uint16
		if len(req.Question) > 0 {
			qtype = req.Question[0].Qtype
		}
		s.cfg.Observe(qtype, resp.Rcode, time.Since(start))
	}
	// Pack into a pooled buffer rather than let WriteMsg allocate one per
	// answer: on the hot path that buffer is a good part of the garbage.
	bp, _ := s.packBufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, maxUDPSize)
		bp = &b
	}
	defer s.packBufs.Put(bp)
	wire, err := resp.PackBuffer(*bp)
	if err != nil {
		s.logger.Error("pack answer", "network", network, "err", err)
		return
	}
	if _, err := w.Write(wire); err != nil {
		s.logger.Debug("write answer", "network", network, "err", err)
	}
}
