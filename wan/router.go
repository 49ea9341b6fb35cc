package wan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/serf/coordinate"
	"github.com/meshd/meshd/gossip"
)

// ErrNoPath means no alive server of the datacenter is known: it does not
// exist, or the WAN link to it is down and its servers were declared
// failed. The text is Consul's.
//
//lint:ignore ST1005 Consul's text, which its clients and users know.
var ErrNoPath = errors.New("No path to datacenter")

// ErrUnreachable means the datacenter has servers alive in the WAN pool
// but none of those tried answered (the link is cut and gossip has not
// declared them failed yet, or they are stopping).
//
//lint:ignore ST1005 capitalised like ErrNoPath, its sibling in answers.
var ErrUnreachable = errors.New("Unreachable datacenter")

// MaxAttempts is how many servers of a datacenter Forward tries.
const MaxAttempts = 3

// Membership is what the Router reads: the WAN pool's members and their
// network coordinates. *gossip.Pool (and so a Pool) provides it.
type Membership interface {
	LocalMember() gossip.Member
	Members() []gossip.Member
	Coordinate(name string) (*coordinate.Coordinate, bool)
}

// FailedHold is how long Forward skips a server that failed to answer a
// forwarded request. WAN gossip takes a minute or more to declare the
// servers behind a cut link failed (memberlist's WAN timings, and few
// peers to confirm the suspicion); until then, without this, every request
// to that datacenter would spend its whole budget on servers that cannot
// answer. While every server of a datacenter is held, requests to it fail
// at once; after the hold they are tried again, which is how a healed link
// is noticed before gossip's own recovery.
const FailedHold = 10 * time.Second

// Router maps a datacenter name to its servers, nearest first, and
// forwards requests to them. Every call reads the current members and
// coordinates, so it follows failures and recoveries as gossip sees them;
// the only state it keeps is which servers failed to answer a forwarded
// request in the last FailedHold. Safe for concurrent use.
type Router struct {
	dc  string
	m   Membership
	now func() time.Time

	mu     sync.Mutex           // guards failed
	failed map[string]time.Time // server address → when it last failed to answer
}

// NewRouter returns a router for a server of datacenter localDC.
func NewRouter(localDC string, m Membership) *Router {
	return &Router{dc: strings.ToLower(localDC), m: m, now: time.Now, failed: map[string]time.Time{}}
}

// Datacenter is the local datacenter.
func (r *Router) Datacenter() string { return r.dc }

// rtts estimates round-trip times from this server.
type rtts struct {
	m     Membership
	local *coordinate.Coordinate
}

func (r *Router) rtts() rtts {
	c, _ := r.m.Coordinate(r.m.LocalMember().Name)
	return rtts{m: r.m, local: c}
}

// to returns the estimated round-trip time to the named member; false
// when either end has no (compatible) coordinate.
func (e rtts) to(name string) (time.Duration, bool) {
	if e.local == nil {
		return 0, false
	}
	c, ok := e.m.Coordinate(name)
	if !ok || !e.local.IsCompatibleWith(c) {
		return 0, false
	}
	return e.local.DistanceTo(c), true
}

type candidate struct {
	server gossip.Server
	rtt    time.Duration
	known  bool
}

// byDistance orders known round-trip times first, smallest first.
func byDistance(a, b candidate) int {
	switch {
	case a.known && !b.known:
		return -1
	case !a.known && b.known:
		return 1
	}
	return cmp.Compare(a.rtt, b.rtt)
}

// Servers returns the alive servers of dc, nearest first by estimated
// round-trip time; servers without a coordinate come last, shuffled so
// requests spread over them.
func (r *Router) Servers(dc string) []gossip.Server {
	dc = strings.ToLower(dc)
	est := r.rtts()
	var cands []candidate
	for _, m := range r.m.Members() {
		s, ok := gossip.ServerFromMember(m)
		if !ok || s.Status != gossip.StatusAlive || s.Datacenter != dc {
			continue
		}
		rtt, known := est.to(m.Name)
		cands = append(cands, candidate{server: s, rtt: rtt, known: known})
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	slices.SortStableFunc(cands, byDistance)
	out := make([]gossip.Server, len(cands))
	for i, c := range cands {
		out[i] = c.server
	}
	return out
}

// DatacenterRTT is a datacenter and the median estimated round-trip time
// from this server to its alive servers (Known false: none could be
// estimated, or none is alive).
type DatacenterRTT struct {
	Datacenter string
	RTT        time.Duration
	Known      bool
	// Alive is how many of its servers are alive.
	Alive int
}

// DatacenterRTTs returns every datacenter with a server in the pool that
// has not left, nearest first (by median round-trip time); those whose
// time is unknown come last, by name. The local datacenter is always
// there.
func (r *Router) DatacenterRTTs() []DatacenterRTT {
	est := r.rtts()
	byDC := map[string][]time.Duration{}
	alive := map[string]int{}
	seen := map[string]bool{r.dc: true}
	for _, m := range r.m.Members() {
		s, ok := gossip.ServerFromMember(m)
		if !ok || s.Status == gossip.StatusLeft {
			continue
		}
		seen[s.Datacenter] = true
		if s.Status != gossip.StatusAlive {
			continue
		}
		alive[s.Datacenter]++
		if rtt, ok := est.to(m.Name); ok {
			byDC[s.Datacenter] = append(byDC[s.Datacenter], rtt)
		}
	}
	out := make([]DatacenterRTT, 0, len(seen))
	for dc := range seen {
		d := DatacenterRTT{Datacenter: dc, Alive: alive[dc]}
		if times := byDC[dc]; len(times) > 0 {
			slices.Sort(times)
			d.RTT, d.Known = times[len(times)/2], true
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b DatacenterRTT) int {
		if c := byDistance(candidate{rtt: a.RTT, known: a.Known}, candidate{rtt: b.RTT, known: b.Known}); c != 0 {
			return c
		}
		// The local datacenter before others at the same distance.
		if (a.Datacenter == r.dc) != (b.Datacenter == r.dc) {
			if a.Datacenter == r.dc {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Datacenter, b.Datacenter)
	})
	return out
}

// Datacenters returns the names DatacenterRTTs orders.
func (r *Router) Datacenters() []string {
	rtts := r.DatacenterRTTs()
	out := make([]string, len(rtts))
	for i, d := range rtts {
		out[i] = d.Datacenter
	}
	return out
}

// Forward calls try with the RPC address of dc's servers, nearest first,
// until one answers: try returns nil, or an error for which retry is
// false (the server answered, with an error, which Forward returns as
// is). At most MaxAttempts servers are tried, skipping those that failed
// to answer in the last FailedHold. With no alive server known the error
// wraps ErrNoPath; when every attempt failed, or every server is held, it
// wraps ErrUnreachable. Both name the datacenter.
func (r *Router) Forward(ctx context.Context, dc string, try func(ctx context.Context, addr string) error, retry func(error) bool) error {
	servers := r.Servers(dc)
	if len(servers) == 0 {
		return fmt.Errorf("%w %q", ErrNoPath, dc)
	}
	addrs := r.unheld(servers)
	if len(addrs) == 0 {
		return fmt.Errorf("%w %q: none of its %d servers answered in the last %v", ErrUnreachable, dc, len(servers), FailedHold)
	}
	var last error
	tried := 0
	for _, addr := range addrs {
		if tried == MaxAttempts {
			break
		}
		tried++
		err := try(ctx, addr)
		if err == nil || !retry(err) {
			r.answered(addr)
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.hold(addr)
		last = err
	}
	return fmt.Errorf("%w %q: none of %d servers answered: %w", ErrUnreachable, dc, tried, last)
}

// unheld lists the addresses of servers that have not failed to answer in
// the last FailedHold, in the order given, and forgets older failures.
func (r *Router) unheld(servers []gossip.Server) []string {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, at := range r.failed {
		if now.Sub(at) >= FailedHold {
			delete(r.failed, addr)
		}
	}
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		if addr := s.Addr.String(); !r.isHeld(addr) {
			out = append(out, addr)
		}
	}
	return out
}

func (r *Router) isHeld(addr string) bool {
	_, held := r.failed[addr]
	return held
}

func (r *Router) hold(addr string) {
	r.mu.Lock()
	r.failed[addr] = r.now()
	r.mu.Unlock()
}

// Forget ends the hold on the server at addr: gossip has just heard from
// it (it rejoined after a restart or a healed link), which is better news
// than its last failure.
func (r *Router) Forget(addr string) { r.answered(addr) }

func (r *Router) answered(addr string) {
	r.mu.Lock()
	delete(r.failed, addr)
	r.mu.Unlock()
}
