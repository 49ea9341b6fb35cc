package wan

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/serf/coordinate"
	"github.com/meshd/meshd/gossip"
)

// fixedMembers is a Membership with chosen members and coordinates: the
// round-trip times the router sorts by, without loopback's noise.
type fixedMembers struct {
	local   string
	members []gossip.Member
	coords  map[string]*coordinate.Coordinate
}

func (f *fixedMembers) LocalMember() gossip.Member {
	for _, m := range f.members {
		if m.Name == f.local {
			return m
		}
	}
	return gossip.Member{}
}

func (f *fixedMembers) Members() []gossip.Member { return f.members }

func (f *fixedMembers) Coordinate(name string) (*coordinate.Coordinate, bool) {
	c, ok := f.coords[name]
	return c, ok
}

// add puts a server of dc in the pool; rtt < 0 leaves it without a
// coordinate. Coordinates lie on a line through the local server, so the
// distance from it is rtt (plus the two minimum heights, 20µs).
func (f *fixedMembers) add(node, dc string, status gossip.MemberStatus, rtt time.Duration) {
	name := MemberName(node, dc)
	i := len(f.members) + 1
	f.members = append(f.members, gossip.Member{
		Name: name, Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Port: 8302, Status: status,
		Tags: gossip.Tags{Role: gossip.RoleServer, Datacenter: dc, ServerPort: 8300},
	})
	if rtt >= 0 {
		c := coordinate.NewCoordinate(coordinate.DefaultConfig())
		c.Vec[0] = rtt.Seconds()
		f.coords[name] = c
	}
}

func newFixed(localNode, localDC string) *fixedMembers {
	f := &fixedMembers{local: MemberName(localNode, localDC), coords: map[string]*coordinate.Coordinate{}}
	f.add(localNode, localDC, gossip.StatusAlive, 0)
	return f
}

func TestDatacentersByRoundTripTime(t *testing.T) {
	f := newFixed("s1", "dc1")
	f.add("s2", "dc1", gossip.StatusAlive, time.Millisecond)
	// dc2 is far (median 80ms), dc3 near (median 12ms, though one of its
	// servers is far), dc4 has only a failed server, dc5 no coordinates,
	// dc6 only a server that left.
	f.add("a", "dc2", gossip.StatusAlive, 70*time.Millisecond)
	f.add("b", "dc2", gossip.StatusAlive, 80*time.Millisecond)
	f.add("c", "dc2", gossip.StatusAlive, 90*time.Millisecond)
	f.add("a", "dc3", gossip.StatusAlive, 10*time.Millisecond)
	f.add("b", "dc3", gossip.StatusAlive, 12*time.Millisecond)
	f.add("c", "dc3", gossip.StatusAlive, 300*time.Millisecond)
	f.add("a", "dc4", gossip.StatusFailed, 5*time.Millisecond)
	f.add("a", "dc5", gossip.StatusAlive, -1)
	f.add("a", "dc6", gossip.StatusLeft, time.Millisecond)
	r := NewRouter("dc1", f)

	want := []string{"dc1", "dc3", "dc2", "dc4", "dc5"}
	if got := r.Datacenters(); !slices.Equal(got, want) {
		t.Fatalf("Datacenters() = %v, want %v", got, want)
	}
	for _, d := range r.DatacenterRTTs() {
		t.Logf("%s: rtt %v known %v alive %d", d.Datacenter, d.RTT, d.Known, d.Alive)
	}
	rtts := r.DatacenterRTTs()
	if d := rtts[1]; d.Datacenter != "dc3" || !d.Known || d.RTT < 12*time.Millisecond || d.RTT > 13*time.Millisecond {
		t.Errorf("dc3 = %+v, want the median, 12ms", d)
	}
	if d := rtts[3]; d.Datacenter != "dc4" || d.Known || d.Alive != 0 {
		t.Errorf("dc4 = %+v, want no alive server and no time", d)
	}

	// Moving dc2 closer than dc3 reorders them.
	for _, n := range []string{"a", "b", "c"} {
		f.coords[MemberName(n, "dc2")].Vec[0] = (2 * time.Millisecond).Seconds()
	}
	want = []string{"dc1", "dc2", "dc3", "dc4", "dc5"}
	if got := r.Datacenters(); !slices.Equal(got, want) {
		t.Fatalf("after dc2 moved closer: Datacenters() = %v, want %v", got, want)
	}
}

func TestLocalDatacenterAlwaysListed(t *testing.T) {
	// Before any coordinate exists, the local datacenter leads the ties.
	f := &fixedMembers{local: "s1.dc9", coords: map[string]*coordinate.Coordinate{}}
	f.add("s1", "dc9", gossip.StatusAlive, -1)
	f.add("x", "alpha", gossip.StatusAlive, -1)
	if got, want := NewRouter("dc9", f).Datacenters(), []string{"dc9", "alpha"}; !slices.Equal(got, want) {
		t.Fatalf("Datacenters() = %v, want %v", got, want)
	}
}

func TestServersNearestFirst(t *testing.T) {
	f := newFixed("s1", "dc1")
	f.add("far", "dc2", gossip.StatusAlive, 90*time.Millisecond)
	f.add("near", "dc2", gossip.StatusAlive, 10*time.Millisecond)
	f.add("dead", "dc2", gossip.StatusFailed, time.Millisecond)
	f.add("mid", "dc2", gossip.StatusAlive, 40*time.Millisecond)
	f.add("unknown", "dc2", gossip.StatusAlive, -1)
	r := NewRouter("dc1", f)
	var names []string
	for _, s := range r.Servers("DC2") {
		names = append(names, s.Name)
	}
	want := []string{"near.dc2", "mid.dc2", "far.dc2", "unknown.dc2"}
	if !slices.Equal(names, want) {
		t.Fatalf("Servers(dc2) = %v, want %v", names, want)
	}
	if got := r.Servers("dc7"); len(got) != 0 {
		t.Fatalf("Servers(dc7) = %v, want none", got)
	}
}

var errUnreachable = errors.New("unreachable")

func TestForward(t *testing.T) {
	f := newFixed("s1", "dc1")
	for i := range 5 {
		f.add("s"+strconv.Itoa(i), "dc2", gossip.StatusAlive, time.Duration(i+1)*time.Millisecond)
	}
	r := NewRouter("dc1", f)
	retry := func(err error) bool { return errors.Is(err, errUnreachable) }
	addrOf := func(node string) string {
		for _, s := range r.Servers("dc2") {
			if s.Name == MemberName(node, "dc2") {
				return s.Addr.String()
			}
		}
		t.Fatalf("no server %s", node)
		return ""
	}

	t.Run("moves on from unreachable servers, nearest first", func(t *testing.T) {
		var tried []string
		err := r.Forward(context.Background(), "dc2", func(_ context.Context, addr string) error {
			tried = append(tried, addr)
			if len(tried) < 2 {
				return errUnreachable
			}
			return nil
		}, retry)
		if err != nil {
			t.Fatalf("Forward = %v", err)
		}
		if want := []string{addrOf("s0"), addrOf("s1")}; !slices.Equal(tried, want) {
			t.Fatalf("tried %v, want %v", tried, want)
		}
	})
	t.Run("an answer with an error ends it", func(t *testing.T) {
		answer := errors.New("bad request")
		calls := 0
		err := r.Forward(context.Background(), "dc2", func(context.Context, string) error { calls++; return answer }, retry)
		if err != answer || calls != 1 {
			t.Fatalf("Forward = %v after %d calls, want the answer after 1", err, calls)
		}
	})
	t.Run("gives up after MaxAttempts, naming the datacenter", func(t *testing.T) {
		calls := 0
		err := r.Forward(context.Background(), "dc2", func(context.Context, string) error { calls++; return errUnreachable }, retry)
		if !errors.Is(err, errUnreachable) || !errors.Is(err, ErrUnreachable) || calls != MaxAttempts {
			t.Fatalf("Forward = %v after %d calls, want %d calls", err, calls, MaxAttempts)
		}
		if want := `Unreachable datacenter "dc2": none of 3 servers answered`; !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("error %q does not name the datacenter", err)
		}
	})
	t.Run("servers that did not answer are held, then tried again", func(t *testing.T) {
		r := NewRouter("dc1", f)
		now := time.Unix(1000, 0)
		r.now = func() time.Time { return now }
		var tried []string
		fail := func(_ context.Context, addr string) error { tried = append(tried, addr); return errUnreachable }
		if err := r.Forward(context.Background(), "dc2", fail, retry); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Forward = %v", err)
		}
		if want := []string{addrOf("s0"), addrOf("s1"), addrOf("s2")}; !slices.Equal(tried, want) {
			t.Fatalf("tried %v, want %v", tried, want)
		}
		// The next request skips the three held servers.
		tried = nil
		r.Forward(context.Background(), "dc2", fail, retry)
		if want := []string{addrOf("s3"), addrOf("s4")}; !slices.Equal(tried, want) {
			t.Fatalf("then tried %v, want %v", tried, want)
		}
		// Every server held: fail at once, naming the datacenter.
		tried = nil
		err := r.Forward(context.Background(), "dc2", fail, retry)
		if !errors.Is(err, ErrUnreachable) || len(tried) != 0 {
			t.Fatalf("with every server held: %v after trying %v", err, tried)
		}
		if want := `Unreachable datacenter "dc2": none of its 5 servers answered in the last 10s`; err.Error() != want {
			t.Fatalf("error %q, want %q", err, want)
		}
		// After the hold they are tried again, and one that answers is
		// no longer held.
		now = now.Add(FailedHold)
		tried = nil
		err = r.Forward(context.Background(), "dc2", func(_ context.Context, addr string) error {
			tried = append(tried, addr)
			return nil
		}, retry)
		if err != nil || !slices.Equal(tried, []string{addrOf("s0")}) {
			t.Fatalf("after the hold: %v, tried %v", err, tried)
		}
		// A caller that gives up holds no server.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r.Forward(ctx, "dc2", func(context.Context, string) error { return errUnreachable }, retry)
		tried = nil
		r.Forward(context.Background(), "dc2", func(_ context.Context, addr string) error {
			tried = append(tried, addr)
			return nil
		}, retry)
		if !slices.Equal(tried, []string{addrOf("s0")}) {
			t.Fatalf("after a cancelled call: tried %v, want s0 again", tried)
		}
	})
	t.Run("no server", func(t *testing.T) {
		err := r.Forward(context.Background(), "dc3", func(context.Context, string) error { return nil }, retry)
		if !errors.Is(err, ErrNoPath) || err.Error() != `No path to datacenter "dc3"` {
			t.Fatalf("Forward = %v, want ErrNoPath naming dc3", err)
		}
	})
}

func TestMemberName(t *testing.T) {
	if got := MemberName("web-1.example", "dc2"); got != "web-1.example.dc2" {
		t.Fatalf("MemberName = %q", got)
	}
	node, dc, ok := SplitMemberName("web-1.example.dc2")
	if !ok || node != "web-1.example" || dc != "dc2" {
		t.Fatalf("SplitMemberName = %q %q %v", node, dc, ok)
	}
	for _, bad := range []string{"", "nodot", ".dc1", "node."} {
		if _, _, ok := SplitMemberName(bad); ok {
			t.Errorf("SplitMemberName(%q) ok", bad)
		}
	}
}
