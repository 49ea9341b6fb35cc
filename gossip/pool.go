package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/serf/coordinate"
	"github.com/hashicorp/serf/serf"
)

var (
	// ErrInvalidConfig: Config.Validate rejected the configuration.
	ErrInvalidConfig = errors.New("invalid gossip config")
	// ErrInvalidTags: Tags.Validate rejected the tags, or a tag did not
	// parse.
	ErrInvalidTags = errors.New("invalid gossip tags")
	// ErrTagsTooLarge: the encoded tags do not fit memberlist's node meta
	// (MaxTagsSize bytes).
	ErrTagsTooLarge = errors.New("gossip tags too large")
	// ErrNotStarted: the call needs a started pool.
	ErrNotStarted = errors.New("gossip pool not started")
	// ErrAlreadyStarted: Start was called twice.
	ErrAlreadyStarted = errors.New("gossip pool already started")
	// ErrLeft: the pool has left (or is leaving) and cannot join again;
	// start a new one.
	ErrLeft = errors.New("gossip pool has left")
	// ErrShutdown: the pool is shut down.
	ErrShutdown = errors.New("gossip pool shut down")
	// ErrUnknownMember: no member has that name.
	ErrUnknownMember = errors.New("unknown gossip member")
)

// eventBuffer is the capacity of the channel serf delivers events on.
// Serf's last stage (its internal-query filter) forwards from a
// 1024-event buffer with a blocking send that does not watch for
// shutdown; a larger buffer, emptied when the event loop stops, means
// that goroutine can always finish and exit.
const eventBuffer = 2048

type poolState int

const (
	stateNew poolState = iota
	stateStarted
	stateShutdown
)

// Pool is an agent's membership in its LAN gossip pool: a serf instance
// (SWIM failure detection on memberlist) plus tags saying what the agent
// is. Create with New, then Start; end with Leave (graceful) and
// Shutdown. All methods are safe for concurrent use.
type Pool struct {
	cfg     Config
	logger  *slog.Logger
	eventCh chan serf.Event
	// shutdownCh is closed when Shutdown starts; stoppedCh once every
	// goroutine the pool started has returned.
	shutdownCh chan struct{}
	stoppedCh  chan struct{}
	wg         sync.WaitGroup
	// shutdownErr is written before stoppedCh is closed, read after.
	shutdownErr error

	// mu guards the fields below, and orders wg.Add before Shutdown's
	// wg.Wait.
	mu    sync.Mutex
	state poolState
	serf  *serf.Serf
	// leaveDoneCh is made by the first Leave and closed when serf's Leave
	// returned, leaveErr set before. Shutdown waits for it: memberlist
	// panics on a leave that runs into its shutdown.
	leaveDoneCh chan struct{}
	leaveErr    error
}

// New validates cfg and returns a pool that is not yet started: no
// sockets, no goroutines.
func New(cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Pool{
		cfg:        cfg,
		logger:     logger.With("component", "gossip"),
		eventCh:    make(chan serf.Event, eventBuffer),
		shutdownCh: make(chan struct{}),
		stoppedCh:  make(chan struct{}),
	}, nil
}

// Start binds the gossip port and starts serf. With a SnapshotPath that
// holds members from an earlier run it starts rejoining them in the
// background; otherwise the pool is alone until Join. Start does not
// block on the network; ctx only cancels a Start that has not begun.
func (p *Pool) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case stateStarted:
		return ErrAlreadyStarted
	case stateShutdown:
		return ErrShutdown
	}
	s, err := serf.Create(p.cfg.serfConfig(stdLogger(p.logger), p.eventCh))
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	p.serf = s
	p.state = stateStarted
	p.wg.Add(1)
	go p.run()

	local := s.Memberlist().LocalNode()
	p.logger.Info("gossip pool started", "node", p.cfg.NodeName,
		"addr", local.Addr.String(), "port", local.Port,
		"role", p.cfg.Tags.Role, "datacenter", p.cfg.Tags.Datacenter,
		"snapshot", p.cfg.SnapshotPath != "")
	return nil
}

// run hands serf's member events to the EventHandler, in order.
func (p *Pool) run() {
	defer p.wg.Done()
	defer func() {
		// Empty the buffer so serf's forwarder, which does not watch
		// for shutdown, has room for what it still holds (eventBuffer).
		for {
			select {
			case <-p.eventCh:
			default:
				return
			}
		}
	}()
	for {
		// Checked first so no event is handed out once Shutdown began.
		select {
		case <-p.shutdownCh:
			return
		default:
		}
		select {
		case e := <-p.eventCh:
			ev, ok := eventFromSerf(e)
			if ok && p.cfg.EventHandler != nil {
				p.cfg.EventHandler(ev)
			}
		case <-p.shutdownCh:
			return
		}
	}
}

// live returns serf for calls that change the pool: ErrNotStarted before
// Start, ErrShutdown after Shutdown.
func (p *Pool) live() (*serf.Serf, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case stateNew:
		return nil, ErrNotStarted
	case stateShutdown:
		return nil, ErrShutdown
	}
	return p.serf, nil
}

// view returns serf for reads, which keep answering (with the last
// state) after Shutdown; nil before Start.
func (p *Pool) view() *serf.Serf {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serf
}

// Join contacts each address ("host:port", or "host" for this pool's own
// gossip port, 8301 by default; IPv6 as "[::1]:8301") and merges state
// with it. It returns how many addresses it reached; the error is nil
// when at least one was. It blocks while it dials, up to
// Config.TCPTimeout per address.
func (p *Pool) Join(addrs []string) (int, error) {
	s, err := p.live()
	if err != nil {
		return 0, err
	}
	switch s.State() {
	case serf.SerfLeaving, serf.SerfLeft:
		return 0, ErrLeft
	case serf.SerfShutdown:
		return 0, ErrShutdown
	}
	// ignoreOld: user events from before the join mean nothing to us.
	n, err := s.Join(addrs, true)
	if err != nil {
		return n, fmt.Errorf("join %v: %w", addrs, err)
	}
	return n, nil
}

// Members returns every member this pool knows, itself included, failed
// and left ones until they are reaped, sorted by name. Nil before Start;
// the last view after Shutdown.
func (p *Pool) Members() []Member {
	s := p.view()
	if s == nil {
		return nil
	}
	sms := s.Members()
	ms := make([]Member, 0, len(sms))
	for _, sm := range sms {
		ms = append(ms, memberFromSerf(sm))
	}
	sortMembers(ms)
	return ms
}

// LocalMember returns this agent as the pool sees it; the zero Member
// before Start.
func (p *Pool) LocalMember() Member {
	s := p.view()
	if s == nil {
		return Member{}
	}
	return memberFromSerf(s.LocalMember())
}

// Servers returns the alive members of datacenter that advertise the
// server role with a usable RPC port (ServerFromMember accepts them),
// sorted by name. An empty datacenter means this agent's own.
func (p *Pool) Servers(datacenter string) []Member {
	if datacenter == "" {
		datacenter = p.LocalMember().Tags.Datacenter
	}
	var out []Member
	for _, m := range p.Members() {
		if m.Status != StatusAlive || m.Tags.Datacenter != datacenter {
			continue
		}
		if _, ok := ServerFromMember(m); ok {
			out = append(out, m)
		}
	}
	return out
}

// NumMembers returns how many members the pool knows, itself, failed and
// left ones included (len(Members())).
func (p *Pool) NumMembers() int {
	s := p.view()
	if s == nil {
		return 0
	}
	return s.NumNodes()
}

// Addr returns the address and port other agents reach this pool at
// (the advertised ones; with BindPort 0 the port the kernel chose).
// Empty and 0 before Start.
func (p *Pool) Addr() (string, int) {
	s := p.view()
	if s == nil {
		return "", 0
	}
	n := s.Memberlist().LocalNode()
	return n.Addr.String(), int(n.Port)
}

// SetTags replaces this agent's tags and gossips them (others see a
// MemberUpdate). It blocks until the update went out to a member, up to
// Config.BroadcastTimeout.
func (p *Pool) SetTags(t Tags) error {
	if err := t.Validate(); err != nil {
		return err
	}
	s, err := p.live()
	if err != nil {
		return err
	}
	if err := s.SetTags(t.Encode()); err != nil {
		return fmt.Errorf("set tags: %w", err)
	}
	return nil
}

// ForceLeave marks a failed member as left, so it is no longer
// reconnected to and is reaped after TombstoneTimeout instead of
// ReconnectTimeout; with prune it is forgotten at once (a MemberReap
// follows). An alive member refutes it. It blocks until the intent went
// out, up to Config.BroadcastTimeout. A name the pool does not know is
// ErrUnknownMember.
func (p *Pool) ForceLeave(name string, prune bool) error {
	s, err := p.live()
	if err != nil {
		return err
	}
	known := false
	for _, m := range s.Members() {
		if m.Name == name {
			known = true
			break
		}
	}
	if !known {
		return fmt.Errorf("force leave %q: %w", name, ErrUnknownMember)
	}
	if prune {
		err = s.RemoveFailedNodePrune(name)
	} else {
		err = s.RemoveFailedNode(name)
	}
	if err != nil {
		return fmt.Errorf("force leave %q: %w", name, err)
	}
	return nil
}

// RTT estimates the round-trip time between members a and b from serf's
// network coordinates; false when either has no coordinate yet (they
// come with probe acks).
func (p *Pool) RTT(a, b string) (time.Duration, bool) {
	ca, ok := p.Coordinate(a)
	if !ok {
		return 0, false
	}
	cb, ok := p.Coordinate(b)
	if !ok || !ca.IsCompatibleWith(cb) {
		return 0, false
	}
	return ca.DistanceTo(cb), true
}

// Coordinate returns the last network coordinate seen for the named
// member (for this agent, its own); false when there is none.
func (p *Pool) Coordinate(name string) (*coordinate.Coordinate, bool) {
	s := p.view()
	if s == nil {
		return nil, false
	}
	c, ok := s.GetCachedCoordinate(name)
	if !ok || c == nil {
		return nil, false
	}
	return c.Clone(), true
}

// Leave leaves the pool gracefully: it gossips the leave, waits for it
// to go out (up to Config.BroadcastTimeout, twice: serf's intent, then
// memberlist's), then keeps answering probes for
// Config.LeavePropagateDelay so others record "left", not "failed". It
// returns when that is done or ctx ends; in the latter case the leave
// goes on and Shutdown waits for it. Concurrent and later calls wait for
// the same leave and return its result. Call Shutdown afterwards.
func (p *Pool) Leave(ctx context.Context) error {
	p.mu.Lock()
	switch p.state {
	case stateNew:
		p.mu.Unlock()
		return ErrNotStarted
	case stateShutdown:
		p.mu.Unlock()
		return ErrShutdown
	}
	if p.leaveDoneCh == nil {
		p.leaveDoneCh = make(chan struct{})
		s, done := p.serf, p.leaveDoneCh
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			start := time.Now()
			err := s.Leave()
			if err != nil {
				err = fmt.Errorf("leave: %w", err)
			} else {
				p.logger.Info("left the gossip pool", "took", time.Since(start).Round(time.Millisecond))
			}
			p.mu.Lock()
			p.leaveErr = err
			p.mu.Unlock()
			close(done)
		}()
	}
	done := p.leaveDoneCh
	p.mu.Unlock()

	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.leaveErr
	case <-ctx.Done():
		return fmt.Errorf("leave: %w", ctx.Err())
	}
}

// Shutdown stops the pool: the event loop at once (no EventHandler call
// starts after Shutdown begins), then, once a Leave in progress has
// finished, serf and its sockets. Without a Leave before it, the others
// will declare this agent failed. It waits until every goroutine the
// pool started has returned, or ctx ends (the shutdown then completes in
// the background). Calling it again, or concurrently, waits the same way
// and returns the same result; it may be called without Start.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.state != stateShutdown {
		p.state = stateShutdown
		s, leaveDone := p.serf, p.leaveDoneCh
		close(p.shutdownCh)
		go p.stop(s, leaveDone)
	}
	p.mu.Unlock()
	select {
	case <-p.stoppedCh:
		return p.shutdownErr
	case <-ctx.Done():
		return fmt.Errorf("shutdown gossip: %w", ctx.Err())
	}
}

// stop is Shutdown's second half: serf after any leave, then the wait.
func (p *Pool) stop(s *serf.Serf, leaveDone <-chan struct{}) {
	if leaveDone != nil {
		<-leaveDone
	}
	if s != nil {
		if err := s.Shutdown(); err != nil {
			p.shutdownErr = fmt.Errorf("shutdown serf: %w", err)
		}
	}
	p.wg.Wait()
	if s != nil {
		p.logger.Info("gossip pool shut down", "node", p.cfg.NodeName)
	}
	close(p.stoppedCh)
}
