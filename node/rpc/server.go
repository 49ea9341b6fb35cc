package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/meshd/meshd/internal/inflight"
)

// Admit decides whether a server takes a call, once its arguments are
// read: an error refuses it (the caller gets the error as the call's
// answer, and the connection carries on). done, when not nil, is called
// once the call has returned, before its answer is written.
type Admit func(method string, args any) (done func(), err error)

// handler answers one method: newReq makes the value a request decodes
// into, serve answers it, and fill copies an answer into a caller's
// value of the method's answer type (for in-process calls).
type handler struct {
	newReq func() any
	serve  func(ctx context.Context, req any) (any, error)
	fill   func(dst, src any)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Codes lists the sentinel errors whose code an answer carries.
	Codes Codes
	// Stopped is the error a call answers with, wrapped around its own,
	// when it failed after the server began to stop (its context ended
	// by the server, not by its caller): callers take it as "try another
	// server".
	Stopped error
}

// Server answers the methods bound to it (Surface.Bind): over
// connections (ServeConn), and in-process (Call). Its zero value is not
// usable; make one with NewServer. It is safe for concurrent use.
type Server struct {
	cfg ServerConfig

	mu      sync.RWMutex // guards methods
	methods map[string]handler

	// calls are the calls in flight over connections, which Shutdown
	// waits for.
	calls inflight.Tracker
}

// NewServer returns a server without methods.
func NewServer(cfg ServerConfig) *Server {
	return &Server{cfg: cfg, methods: make(map[string]handler)}
}

func (s *Server) handle(name string, h handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.methods[name]; ok {
		panic(fmt.Sprintf("rpc: method %s bound twice", name))
	}
	s.methods[name] = h
}

func (s *Server) lookup(name string) (handler, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.methods[name]
	return h, ok
}

// Call answers method in-process, as a connection would: the same
// handler, without encoding, admission or budget (the caller's ctx bounds
// it). It makes a *Server a Caller.
func (s *Server) Call(ctx context.Context, method string, req, resp any) error {
	h, ok := s.lookup(method)
	if !ok {
		return fmt.Errorf("%w %s", ErrUnknownMethod, method)
	}
	out, err := h.serve(ctx, req)
	h.fill(resp, out)
	return err
}

// helloTimeout bounds the wait for a connection's Hello.
const helloTimeout = 10 * time.Second

// ServeConn reads the Hello that opens a connection (after ConnByte) and
// answers the calls that follow, each in a goroutine of its own, until
// the connection fails or closes; it returns then, while calls still in
// flight are cancelled and finish on their own (Shutdown waits for them).
// admitFor chooses the Admit for the caller who said hello (nil: take
// every call). Each call runs under ctx, ending at the deadline its
// budget sets. ServeConn closes rwc before it returns.
func (s *Server) ServeConn(ctx context.Context, rwc io.ReadWriteCloser, admitFor func(Hello) Admit) error {
	c := newCodec(rwc)
	defer c.Close()
	type readDeadliner interface{ SetReadDeadline(time.Time) error }
	rd, _ := rwc.(readDeadliner)
	if rd != nil {
		rd.SetReadDeadline(time.Now().Add(helloTimeout))
	}
	var hello Hello
	if err := c.dec.Decode(&hello); err != nil {
		return fmt.Errorf("rpc hello: %w", err)
	}
	if rd != nil {
		rd.SetReadDeadline(time.Time{})
	}
	var admit Admit
	if admitFor != nil {
		admit = admitFor(hello)
	}

	// The calls on this connection end with it: a caller whose connection
	// is gone waits for no answer, so a blocking query it left gives up
	// its slot at once.
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	for {
		var h header
		if err := c.readHeader(&h); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		hd, ok := s.lookup(h.ServiceMethod)
		if !ok {
			if err := c.readBody(nil); err != nil {
				return err
			}
			s.answer(c, &h, nil, fmt.Errorf("%w %s", ErrUnknownMethod, h.ServiceMethod))
			continue
		}
		req := hd.newReq()
		if err := c.readBody(req); err != nil {
			// The stream cannot be trusted past a body that failed to
			// decode.
			s.answer(c, &h, nil, fmt.Errorf("rpc: bad request for %s: %w", h.ServiceMethod, err))
			return err
		}
		var done func()
		if admit != nil {
			d, err := admit(h.ServiceMethod, req)
			if err != nil {
				s.answer(c, &h, nil, err)
				continue
			}
			done = d
		}
		if !s.calls.Enter() {
			if done != nil {
				done()
			}
			s.answer(c, &h, nil, s.stopped(context.Canceled))
			continue
		}
		go func(h header) {
			defer s.calls.Exit()
			out, err := s.serve(ctx, connCtx, hd, &h, req)
			// The call's work is over: free its admission before the
			// caller can see the answer and call again.
			if done != nil {
				done()
			}
			if !s.answer(c, &h, out, err) {
				c.Close() // the connection is gone: end the read loop too
			}
		}(h)
	}
}

// serve runs one call under connCtx (which ends with the server's ctx or
// the connection), bounded by the budget in its header (a caller of an
// older build sends none: then the time such a caller waits).
func (s *Server) serve(ctx, connCtx context.Context, hd handler, h *header, req any) (any, error) {
	var budget time.Duration
	if h.Budget > 0 {
		budget = time.Duration(min(h.Budget, int64(maxBudget)))
	} else {
		budget = CallTimeout(req)
	}
	cctx, cancel := context.WithTimeout(connCtx, budget)
	defer cancel()
	out, err := hd.serve(cctx, req)
	if err != nil && ctx.Err() != nil {
		err = s.stopped(err)
	}
	return out, err
}

// stopped marks err as the failure of a call the server's stop cut short.
func (s *Server) stopped(err error) error {
	if s.cfg.Stopped == nil || errors.Is(err, s.cfg.Stopped) {
		return err
	}
	return fmt.Errorf("%w: %v", s.cfg.Stopped, err)
}

// answer writes the response to the call h: out, or err with its code.
// It reports whether the response could be written.
func (s *Server) answer(c *codec, h *header, out any, err error) bool {
	resp := &header{ServiceMethod: h.ServiceMethod, Seq: h.Seq}
	if err != nil {
		resp.Error = err.Error()
		resp.Code = s.cfg.Codes.nameOf(err)
		if resp.Code == "" && errors.Is(err, ErrUnknownMethod) {
			resp.Code = unknownMethod
		}
		out = struct{}{}
	}
	return c.write(resp, out) == nil
}

// Shutdown refuses new calls over connections and waits until those in
// flight have returned, or ctx ends. The caller ends them first (the ctx
// given to ServeConn).
func (s *Server) Shutdown(ctx context.Context) error {
	return s.calls.CloseAndWait(ctx)
}
