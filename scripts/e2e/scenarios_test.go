//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// waitReady waits until every datacenter in dcs has one leader all its
// servers agree on, every host sees every host of its datacenter alive,
// and every client answers the demo web service with all of its
// datacenter's clients passing.
func waitReady(t *testing.T, c *cluster, dcs ...string) {
	t.Helper()
	took, err := eventually(2*time.Minute, 250*time.Millisecond, func() error {
		for _, dc := range dcs {
			if _, err := agreedLeader(c.servers(dc)); err != nil {
				return err
			}
			var want []string
			for _, h := range c.hosts {
				if h.DC == dc {
					want = append(want, h.Node)
				}
			}
			for _, h := range c.hosts {
				if h.DC != dc {
					continue
				}
				alive, err := aliveMembers(h, "")
				if err != nil {
					return err
				}
				if !slices.Equal(alive, sorted(want)) {
					return fmt.Errorf("%s sees %v alive, want %v", h, alive, sorted(want))
				}
			}
			var webs []string
			for _, cl := range c.clients(dc) {
				webs = append(webs, cl.Node)
			}
			for _, cl := range c.clients(dc) {
				got, err := healthyNodes(cl, "web", "")
				if err != nil {
					return err
				}
				if !slices.Equal(got, sorted(webs)) {
					return fmt.Errorf("%s answers web on %v, want %v", cl, got, webs)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("cluster not ready: %v", err)
	}
	t.Logf("cluster ready in %s", took.Round(time.Millisecond))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// agreedLeader is the leader every one of servers reports.
func agreedLeader(servers []host) (string, error) {
	var first string
	for i, s := range servers {
		l, err := leader(s)
		if err != nil {
			return "", err
		}
		if l == "" {
			return "", fmt.Errorf("%s knows no leader", s)
		}
		if i == 0 {
			first = l
		} else if l != first {
			return "", fmt.Errorf("%s says %s leads, %s says %s", servers[0], first, s, l)
		}
	}
	return first, nil
}

// aliveMembers lists the members h's gossip pool (?wan for "wan") has alive.
func aliveMembers(h host, query string) ([]string, error) {
	var members []struct {
		Name   string
		Status int
	}
	if err := get(h, 5*time.Second, "/v1/agent/members"+query, &members); err != nil {
		return nil, err
	}
	var alive []string
	for _, m := range members {
		if m.Status == 1 {
			alive = append(alive, m.Name)
		}
	}
	sort.Strings(alive)
	return alive, nil
}

// scenario records the figures of one test under its name in RESULTS.md.
func scenario(t *testing.T, name string) func(figure, format string, args ...any) {
	t.Cleanup(func() { results.done(name, t.Failed()) })
	return func(figure, format string, args ...any) {
		v := fmt.Sprintf(format, args...)
		t.Logf("%s: %s", figure, v)
		results.add(name, figure, "%s", v)
	}
}

// waitNewLeader polls servers until all of them agree on a leader other
// than old, and returns it with the time that took.
func waitNewLeader(t *testing.T, servers []host, old string, timeout time.Duration) (string, time.Duration) {
	t.Helper()
	var got string
	took, err := eventually(timeout, 20*time.Millisecond, func() error {
		l, err := agreedLeader(servers)
		if err != nil {
			return err
		}
		if l == old {
			return fmt.Errorf("%s still leads", l)
		}
		got = l
		return nil
	})
	if err != nil {
		t.Fatalf("no new leader: %v", err)
	}
	return got, took
}

// maxAckGap is the longest time writes went unacknowledged.
func (w *writers) maxAckGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	times := slices.Clone(w.ackTimes)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(times); i++ {
		gap = max(gap, times[i].Sub(times[i-1]))
	}
	return gap
}

// observe lets the writers and watchers run for d: the window a figure is
// measured over, not a wait for a condition (those poll).
func observe(d time.Duration) { time.Sleep(d) }

// waitAcked waits until n more writes than before were acknowledged after
// since.
func waitAcked(t *testing.T, w *writers, since time.Time, n int, timeout time.Duration) {
	t.Helper()
	if _, err := eventually(timeout, 50*time.Millisecond, func() error {
		if got := w.ackedSince(since); got < n {
			return fmt.Errorf("%d writes acknowledged since %s, want %d; errors: %s", got, since.Format("15:04:05.000"), n, w.errorSummary())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func checkWrites(t *testing.T, fig func(string, string, ...any), what string, w *writers, servers []host) {
	t.Helper()
	attempted, acked, found, err := w.verify(servers)
	fig("writes "+what+": attempted / acknowledged / found on every server", "%d / %d / %d", attempted, acked, found)
	if errs := w.errorSummary(); errs != "" {
		t.Logf("write errors: %s", errs)
	}
	if err != nil {
		t.Error(err)
	}
}

// webWatches asks every client's DNS for the demo web service every 50 ms
// and wants want addresses; with http, its HTTP API too.
func webWatches(clients []host, want int, http bool) []*watch {
	var ws []*watch
	for _, cl := range clients {
		ws = append(ws, startWatch(cl, "DNS", 50*time.Millisecond, 5*time.Minute, func() error {
			ips, _, err := lookupA(cl, "web.service.consul", time.Second)
			if err == nil && len(ips) != want {
				err = fmt.Errorf("web.service.consul answered %v, want %d addresses", ips, want)
			}
			return err
		}))
		if http {
			ws = append(ws, startWatch(cl, "HTTP", 50*time.Millisecond, 5*time.Minute, func() error {
				nodes, err := healthyNodes(cl, "web", "")
				if err == nil && len(nodes) != want {
					err = fmt.Errorf("health/service/web answered %v, want %d instances", nodes, want)
				}
				return err
			}))
		}
	}
	return ws
}

// stopWatches ends the watches and checks none of them went longer than
// bound without an answer.
func stopWatches(t *testing.T, fig func(string, string, ...any), ws []*watch, bound time.Duration) {
	t.Helper()
	var worst time.Duration
	var parts []string
	for _, d := range ws {
		polls, failures, gap, lastErr := d.stop()
		worst = max(worst, gap)
		part := fmt.Sprintf("%s %s %d/%d answered, longest gap %s", d.h, d.what, polls-failures, polls, ms(gap))
		if failures > 0 {
			part += fmt.Sprintf(" (last failure: %s)", lastErr)
		}
		parts = append(parts, part)
		if gap > bound {
			t.Errorf("%s on %s went %s without a good answer (bound %s); last error: %s", d.what, d.h, gap, bound, lastErr)
		}
	}
	fig("lookups from clients", "%s", strings.Join(parts, "; "))
	fig("longest time any client went unanswered", "%s", ms(worst))
}

// TestLeaderKill: docker kill the leader while writers register through
// the clients and DNS is asked on every client.
func TestLeaderKill(t *testing.T) {
	fig := scenario(t, "1. kill the leader")
	c := startCluster(t, "compose.yml", oneDC())
	waitReady(t, c, "dc1")
	servers, clients := c.servers("dc1"), c.clients("dc1")

	w := startWriters("kill", 3, 20*time.Millisecond, 30000, func(i int) host { return clients[i%len(clients)] })
	defer w.stop()
	watches := webWatches(clients, 3, false)
	start := time.Now()
	waitAcked(t, w, start, 100, 30*time.Second)
	observe(3 * time.Second)

	old, err := agreedLeader(servers)
	if err != nil {
		t.Fatal(err)
	}
	dead, _ := c.byRaftAddr(old)
	var rest []host
	for _, s := range servers {
		if s.Node != dead.Node {
			rest = append(rest, s)
		}
	}
	killed := time.Now()
	c.docker("kill", dead.Container)
	newLeader, election := waitNewLeader(t, rest, old, 30*time.Second)
	fig("election time (kill to a new leader all survivors agree on)", "%s (%s → %s)", ms(election), old, newLeader)
	if election > 10*time.Second {
		t.Errorf("election took %s", election)
	}
	waitAcked(t, w, killed.Add(election), 100, 30*time.Second)
	observe(5 * time.Second)
	w.stop()
	gap := w.maxAckGap()
	fig("longest time without an acknowledged write", "%s", ms(gap))
	// Writes through a client whose server was the one killed wait for
	// gossip to declare it failed (a few seconds); the others for the
	// election.
	if bound := election + 6*time.Second; gap > bound {
		t.Errorf("writes went %s without an acknowledgement (bound %s); killed at %s; slowest: %s",
			gap, bound, killed.Format("15:04:05.000"), w.slowest(5))
	}
	stopWatches(t, fig, watches, election+2*time.Second)
	checkWrites(t, fig, "through the clients", w, rest)

	// The killed server comes back with its data and catches up.
	c.docker("start", dead.Container)
	took, err := eventually(60*time.Second, 100*time.Millisecond, func() error {
		if _, err := agreedLeader(servers); err != nil {
			return err
		}
		_, _, _, err := w.verify(servers)
		return err
	})
	if err != nil {
		t.Fatalf("killed server did not catch up: %v", err)
	}
	fig("killed server restarted and caught up", "%s", ms(took))
}

// leaderHost is the server all of servers agree leads.
func leaderHost(t *testing.T, c *cluster, servers []host) (host, string) {
	t.Helper()
	var addr string
	if _, err := eventually(30*time.Second, 50*time.Millisecond, func() error {
		var err error
		addr, err = agreedLeader(servers)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h, ok := c.byRaftAddr(addr)
	if !ok {
		t.Fatalf("leader %s is none of the servers", addr)
	}
	return h, addr
}

func without(hs []host, out host) []host {
	var rest []host
	for _, h := range hs {
		if h.Node != out.Node {
			rest = append(rest, h)
		}
	}
	return rest
}

// targets is the set of hosts writers write through, changed as faults
// come and go.
type targets struct {
	mu    sync.Mutex
	hosts []host
}

func (ts *targets) set(hs []host) { ts.mu.Lock(); ts.hosts = hs; ts.mu.Unlock() }
func (ts *targets) pick(i int) host {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.hosts[i%len(ts.hosts)]
}

// tryWrite registers one instance through h and returns how long the
// answer took and the error, if any.
func tryWrite(h host, id string) (time.Duration, error) {
	reg := newRegistration(id, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := call(ctx, h, "PUT", "/v1/catalog/register", reg, nil)
	return time.Since(start), err
}

// catalogIndex is the index of the writes service in h's own catalog.
func catalogIndex(h host) (uint64, error) {
	_, index, err := written(h)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(index, 10, 64)
}

// waitCaughtUp waits until h follows the leader its peers agree on and
// holds the catalog at least at index.
func waitCaughtUp(t *testing.T, servers []host, h host, index uint64) time.Duration {
	t.Helper()
	took, err := eventually(90*time.Second, 100*time.Millisecond, func() error {
		if _, err := agreedLeader(servers); err != nil {
			return err
		}
		got, err := catalogIndex(h)
		if err != nil {
			return err
		}
		if got < index {
			return fmt.Errorf("%s is at index %d, want %d", h, got, index)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s did not catch up: %v", h, err)
	}
	return took
}

// refused checks that a write through a server cut off from the majority
// is not acknowledged, and later that it was never applied either.
func refused(t *testing.T, fig func(string, string, ...any), what string, h host, id string) {
	t.Helper()
	took, err := tryWrite(h, id)
	if err == nil {
		t.Errorf("%s (%s) acknowledged a write while cut off from the majority", what, h)
		return
	}
	fig("write through "+what, "refused after %s: %.120s", ms(took), err.Error())
}

// TestPartition: cut a follower off the datacenter's network, then the
// leader. The majority side keeps taking writes, the minority refuses
// them, and once healed every server holds the same catalog with every
// acknowledged write and none of the refused ones.
func TestPartition(t *testing.T) {
	fig := scenario(t, "2. partition a follower, then the leader")
	c := startCluster(t, "compose.yml", oneDC())
	waitReady(t, c, "dc1")
	servers := c.servers("dc1")

	ldr, _ := leaderHost(t, c, servers)
	follower := without(servers, ldr)[0]
	// Writers through the majority side (moved as the faults move), and
	// one writer through each server whatever happens to it: a server cut
	// off from the majority must not acknowledge any write sent to it
	// after the cut, not even in the moments before a cut-off leader
	// notices it lost its quorum.
	ts := &targets{}
	ts.set(without(servers, follower))
	w := startWriters("part", 4, 20*time.Millisecond, 40000, ts.pick)
	defer w.stop()
	each := startWriters("each", len(servers), 20*time.Millisecond, 30000, func(i int) host { return servers[i%len(servers)] })
	defer each.stop()
	waitAcked(t, w, time.Now(), 50, 30*time.Second)
	noMinorityAcks := func(what string, h host, from, to time.Time) {
		t.Helper()
		ids := each.ackedThrough(h, from, to)
		fig("writes acknowledged by "+what+" while cut off", "%d", len(ids))
		if len(ids) > 0 {
			t.Errorf("%s (%s) acknowledged %d writes sent while it was cut off, e.g. %v", what, h, len(ids), ids[:min(5, len(ids))])
		}
	}

	// A follower alone.
	c.disconnect(lanNet, follower)
	cut := time.Now()
	waitAcked(t, w, cut, 100, 30*time.Second)
	fig("writes acknowledged by the majority with a follower cut off", "%d in %s", w.ackedSince(cut), ms(time.Since(cut)))
	refused(t, fig, "the cut-off follower", follower, "refused-follower")
	index, err := catalogIndex(ldr)
	if err != nil {
		t.Fatal(err)
	}
	healing := time.Now()
	c.connect(lanNet, follower, follower.LanIP)
	noMinorityAcks("the cut-off follower", follower, cut, healing)
	fig("healed follower caught up", "%s", ms(waitCaughtUp(t, servers, follower, index)))

	// The leader alone.
	ldr, oldAddr := leaderHost(t, c, servers)
	majority := without(servers, ldr)
	ts.set(majority)
	c.disconnect(lanNet, ldr)
	cut = time.Now()
	newAddr, election := waitNewLeader(t, majority, oldAddr, 30*time.Second)
	fig("new leader elected by the majority", "%s (%s → %s)", ms(election), oldAddr, newAddr)
	waitAcked(t, w, cut.Add(election), 100, 30*time.Second)
	fig("writes acknowledged by the majority with the leader cut off", "%d in %s", w.ackedSince(cut), ms(time.Since(cut)))
	refused(t, fig, "the cut-off old leader", ldr, "refused-leader")
	stepDown, err := eventually(30*time.Second, 50*time.Millisecond, func() error {
		if l, err := leader(ldr); err != nil || l == oldAddr {
			return fmt.Errorf("still says %q leads (%v)", l, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("the cut-off leader never stepped down: %v", err)
	}
	fig("cut-off leader stopped claiming to lead", "%s after the cut", ms(election+stepDown))
	newLdr, _ := c.byRaftAddr(newAddr)
	index, err = catalogIndex(newLdr)
	if err != nil {
		t.Fatal(err)
	}
	healing = time.Now()
	c.connect(lanNet, ldr, ldr.LanIP)
	noMinorityAcks("the cut-off old leader", ldr, cut, healing)
	fig("healed old leader caught up", "%s", ms(waitCaughtUp(t, servers, ldr, index)))
	ts.set(servers)
	observe(2 * time.Second)
	w.stop()
	each.stop()
	fig("longest time without an acknowledged write", "%s", ms(w.maxAckGap()))
	checkWrites(t, fig, "through the majority side", w, servers)
	checkWrites(t, fig, "through each server, cut off or not", each, servers)
	for _, s := range servers {
		ids, _, err := written(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"refused-follower", "refused-leader"} {
			if ids[id] {
				t.Errorf("%s holds %s, a write the minority refused", s, id)
			}
		}
	}
	fig("after healing", "every server holds the same catalog; no refused write applied")
}

// TestRollingRestart restarts the servers one by one (docker restart: a
// SIGTERM, then a start on the same data), each once the previous one is
// back and caught up, while writers register through the clients and the
// clients answer DNS and HTTP lookups.
func TestRollingRestart(t *testing.T) {
	fig := scenario(t, "3. rolling restart of the servers")
	c := startCluster(t, "compose.yml", oneDC())
	waitReady(t, c, "dc1")
	servers, clients := c.servers("dc1"), c.clients("dc1")

	w := startWriters("roll", 3, 20*time.Millisecond, 60000, func(i int) host { return clients[i%len(clients)] })
	defer w.stop()
	watches := webWatches(clients, 3, true)
	waitAcked(t, w, time.Now(), 50, 30*time.Second)
	start := time.Now()
	for _, s := range servers {
		index, err := catalogIndex(s)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		c.docker("restart", "-t", "10", s.Container)
		restarted := time.Since(t0)
		back := waitCaughtUp(t, servers, s, index)
		waitAcked(t, w, time.Now(), 20, 30*time.Second)
		fig("restart "+s.Node, "docker restart %s, back and caught up %s later", ms(restarted), ms(back))
	}
	fig("all three restarted", "in %s", ms(time.Since(start)))
	observe(2 * time.Second)
	w.stop()
	fig("longest time without an acknowledged write", "%s", ms(w.maxAckGap()))
	stopWatches(t, fig, watches, 3*time.Second)
	checkWrites(t, fig, "through the clients", w, servers)
}

// fsmFormat is the log format server h reads and writes
// (agent/self Stats.raft.fsm_format); "" from a build before formats.
func fsmFormat(h host) (string, error) {
	var self struct {
		Stats struct{ Raft map[string]string }
	}
	if err := get(h, 5*time.Second, "/v1/agent/self", &self); err != nil {
		return "", err
	}
	return self.Stats.Raft["fsm_format"], nil
}

// TestRollingUpgrade: the servers start on the previous release's binary
// (scripts/e2e/previous-release) and move to this tree's one at a time,
// the followers first and the leader last, each restarted on its own data
// directory, while this tree's client agents keep writing through every
// step. No acknowledged write is lost; while any server runs the previous
// build the new ones keep to the log formats it reads (fsm_format no
// higher than the previous build's), and once all run the new build every
// server moves to a newer one (now 3: the leader stores the autopilot
// configuration, which operator/autopilot/configuration then answers).
func TestRollingUpgrade(t *testing.T) {
	fig := scenario(t, "7. rolling upgrade from the previous release")
	if st, err := os.Stat(filepath.Join(dir, ".build", "meshd-prev")); err != nil || st.Size() == 0 {
		t.Skip("SKIPPED: the image has no previous release binary (its commit, in scripts/e2e/previous-release, is not in this clone's history)")
	}
	t.Setenv("MESHD_SERVER_BIN", "/bin/meshd-prev")
	c := startCluster(t, "compose.yml", oneDC())
	waitReady(t, c, "dc1")
	servers, clients := c.servers("dc1"), c.clients("dc1")
	w := startWriters("upgrade", 3, 20*time.Millisecond, 60000, func(i int) host { return clients[i%len(clients)] })
	defer w.stop()
	watches := webWatches(clients, 3, true)
	waitAcked(t, w, time.Now(), 50, 30*time.Second)
	// The newest format the previous build writes (one that reports none
	// writes format 1).
	prev := 1
	for _, s := range servers {
		f, err := fsmFormat(s)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(f)
		prev = max(prev, n)
	}
	fig("previous release's format", "fsm_format %d", prev)
	lead, _ := leaderHost(t, c, servers)
	order := append(without(servers, lead), lead)
	start := time.Now()
	for i, s := range order {
		index, err := catalogIndex(s)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		c.docker("exec", s.Container, "sh", "-c", "echo /bin/meshd > /data/.bin")
		c.docker("restart", "-t", "10", s.Container)
		restarted := time.Since(t0)
		back := waitCaughtUp(t, servers, s, index)
		waitAcked(t, w, time.Now(), 20, 30*time.Second)
		f, err := fsmFormat(s)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(f); i < len(order)-1 && n > prev {
			t.Fatalf("%s runs the new build beside the previous one and reports fsm_format %q, which the previous build cannot read", s, f)
		}
		fig("upgrade "+s.Node, "docker restart %s on the new binary, back and caught up %s later (fsm_format %s)", ms(restarted), ms(back), f)
	}
	var newest string
	took, err := eventually(60*time.Second, 250*time.Millisecond, func() error {
		for i, s := range servers {
			f, err := fsmFormat(s)
			if n, _ := strconv.Atoi(f); err != nil || n <= prev || (i > 0 && f != newest) {
				return fmt.Errorf("%s at fsm_format %q (%v), want one format for all, above %d", s, f, err, prev)
			}
			newest = f
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
	fig("every server on the new format", "fsm_format %s %s after the last upgrade", newest, ms(took))
	var ap struct{ ModifyIndex uint64 }
	if err := get(servers[0], 5*time.Second, "/v1/operator/autopilot/configuration", &ap); err != nil || ap.ModifyIndex == 0 {
		t.Fatalf("autopilot configuration after the upgrade: %+v %v", ap, err)
	}
	fig("all three upgraded", "in %s", ms(time.Since(start)))
	observe(2 * time.Second)
	w.stop()
	fig("longest time without an acknowledged write", "%s", ms(w.maxAckGap()))
	stopWatches(t, fig, watches, 3*time.Second)
	checkWrites(t, fig, "through the clients", w, servers)
}

// propagation polls every one of hosts until gone reports the change
// visible there, and returns the time it took on each.
func propagation(t *testing.T, hosts []host, since time.Time, bound time.Duration, gone func(h host) error) map[string]time.Duration {
	t.Helper()
	var mu sync.Mutex
	out := map[string]time.Duration{}
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := eventually(bound+20*time.Second, 50*time.Millisecond, func() error { return gone(h) })
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v", h, err)
				out[h.Node] = -1
				return
			}
			out[h.Node] = time.Since(since)
		}()
	}
	wg.Wait()
	return out
}

func reportPropagation(t *testing.T, fig func(string, string, ...any), name string, got map[string]time.Duration, bound time.Duration) {
	t.Helper()
	var parts []string
	var worst time.Duration
	for _, node := range slices.Sorted(maps.Keys(got)) {
		d := got[node]
		if d < 0 {
			parts = append(parts, node+" never (within the bound)")
			worst = max(worst, bound+time.Nanosecond)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s", node, ms(d)))
		worst = max(worst, d)
	}
	fig(name, "%s (slowest %s)", strings.Join(parts, ", "), ms(worst))
	if worst > bound {
		t.Errorf("%s: %s, over the %s bound", name, worst, bound)
	}
}

// webGone reports nil once h answers the web service without victim's
// instance, over both DNS and HTTP; webBack once its DNS answers it again.
func webGone(victim host) func(h host) error { return webAnswers(victim, false) }
func webBack(victim host) func(h host) error { return webAnswers(victim, true) }

func webAnswers(victim host, want bool) func(h host) error {
	return func(h host) error {
		ips, _, err := lookupA(h, "web.service.consul", time.Second)
		if err != nil {
			return err
		}
		if slices.Contains(ips, victim.LanIP) != want {
			return fmt.Errorf("DNS answers %v, want %s in it: %v", ips, victim.LanIP, want)
		}
		if want {
			return nil
		}
		nodes, err := healthyNodes(h, "web", "")
		if err != nil {
			return err
		}
		if slices.Contains(nodes, victim.Node) {
			return fmt.Errorf("HTTP still answers %s", victim.Node)
		}
		return nil
	}
}

// TestClientKill: docker kill a client host; gossip declares it failed, the
// leader marks it critical, and its web instance leaves the answers of
// every other client.
func TestClientKill(t *testing.T) {
	fig := scenario(t, "4. kill a client agent")
	c := startCluster(t, "compose.yml", oneDC())
	waitReady(t, c, "dc1")
	clients := c.clients("dc1")
	victim, others := clients[2], clients[:2]

	killed := time.Now()
	c.docker("kill", victim.Container)
	reportPropagation(t, fig, "its web instance out of DNS and HTTP answers on", propagation(t, others, killed, 10*time.Second, webGone(victim)), 10*time.Second)

	started := time.Now()
	c.docker("start", victim.Container)
	reportPropagation(t, fig, "restarted, back in DNS answers on", propagation(t, clients, started, 30*time.Second, webBack(victim)), 30*time.Second)
}

// TestWebStop: stop the demo web server on one client host (its agent goes
// on); the HTTP check (interval 2 s, critical after 2 failures) takes it
// out of every client's answers.
func TestWebStop(t *testing.T) {
	fig := scenario(t, "5. stop a demo web service")
	c := startCluster(t, "compose.yml", oneDC())
	waitReady(t, c, "dc1")
	clients := c.clients("dc1")
	victim := clients[0]

	stopped := time.Now()
	c.docker("exec", victim.Container, "killall", "httpd")
	reportPropagation(t, fig, "out of DNS and HTTP answers on", propagation(t, clients, stopped, 10*time.Second, webGone(victim)), 10*time.Second)

	started := time.Now()
	c.docker("exec", victim.Container, "httpd", "-p", "8080", "-h", "/www")
	reportPropagation(t, fig, "web restarted, back in DNS answers on", propagation(t, clients, started, 10*time.Second, webBack(victim)), 10*time.Second)
}

// crossDC asks dc1's client for dc2's web instances over HTTP and DNS and
// wants dc2's client; it returns the HTTP and DNS round trips.
func crossDC(from, want host) (time.Duration, time.Duration, error) {
	start := time.Now()
	nodes, err := healthyNodes(from, "web", "&dc=dc2")
	httpTook := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if !slices.Equal(nodes, []string{want.Node}) {
		return 0, 0, fmt.Errorf("dc2's web from %s: %v, want %s", from, nodes, want)
	}
	start = time.Now()
	ips, _, err := lookupA(from, "web.service.dc2.consul", 3*time.Second)
	dnsTook := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if !slices.Equal(ips, []string{want.LanIP}) {
		return 0, 0, fmt.Errorf("web.service.dc2.consul from %s: %v, want %s", from, ips, want.LanIP)
	}
	return httpTook, dnsTook, nil
}

// TestFederation: two datacenters joined over the WAN network. dc1's
// client finds dc2's web service over HTTP and DNS; cutting dc2's servers
// off the WAN makes dc1 answer dc2 lookups with an error naming dc2 while
// both datacenters go on answering their own; healing restores the
// cross-datacenter answers.
func TestFederation(t *testing.T) {
	fig := scenario(t, "6. two datacenters: lookup, WAN cut, heal")
	c := startCluster(t, "compose-wan.yml", twoDC())
	waitReady(t, c, "dc1", "dc2")
	dc1, dc2 := c.clients("dc1")[0], c.clients("dc2")[0]
	var wanMembers []string
	for _, s := range c.hosts {
		if s.Server {
			wanMembers = append(wanMembers, s.Node+"."+s.DC)
		}
	}
	took, err := eventually(2*time.Minute, 250*time.Millisecond, func() error {
		for _, s := range c.hosts {
			if !s.Server {
				continue
			}
			alive, err := aliveMembers(s, "?wan")
			if err != nil {
				return err
			}
			if !slices.Equal(alive, sorted(wanMembers)) {
				return fmt.Errorf("%s sees %v alive in the WAN pool", s, alive)
			}
		}
		_, _, err := crossDC(dc1, dc2)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fig("WAN pool of 6 servers formed, dc2 found from dc1", "%s after both datacenters were ready", ms(took))
	httpTook, dnsTook, err := crossDC(dc1, dc2)
	if err != nil {
		t.Fatal(err)
	}
	fig("cross-datacenter lookup from dc1's client", "HTTP %s, DNS %s", ms(httpTook), ms(dnsTook))

	own := func(h host) *watch {
		return startWatch(h, "DNS web.service.consul", 100*time.Millisecond, 5*time.Minute, func() error {
			ips, _, err := lookupA(h, "web.service.consul", time.Second)
			if err == nil && !slices.Equal(ips, []string{h.LanIP}) {
				err = fmt.Errorf("answered %v, want %s", ips, h.LanIP)
			}
			return err
		})
	}
	watches := []*watch{own(dc1), own(dc2)}

	for _, s := range c.servers("dc2") {
		c.disconnect(wanNet, s)
	}
	cut := time.Now()
	// DNS alone first: it is answered from the agent's cache, kept fresh
	// by a blocking query to dc2 that a cut link leaves hanging; nothing
	// else may end it (no plain request drops the connection first).
	var slowest time.Duration
	took, err = eventually(time.Minute, 200*time.Millisecond, func() error {
		start := time.Now()
		_, rcode, err := lookupA(dc1, "web.service.dc2.consul", 8*time.Second)
		slowest = max(slowest, time.Since(start))
		if rcode != dns.RcodeServerFailure {
			return fmt.Errorf("web.service.dc2.consul from dc1: rcode %d (%v), want SERVFAIL", rcode, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("cutting the WAN: %v", err)
	}
	fig("WAN cut: DNS for dc2 from dc1 answers SERVFAIL", "after %s (slowest DNS answer %s)", ms(took), ms(slowest))
	var answer string
	slowest = 0
	took, err = eventually(time.Minute, 200*time.Millisecond, func() error {
		start := time.Now()
		_, err := healthyNodes(dc1, "web", "&dc=dc2")
		slowest = max(slowest, time.Since(start))
		if err == nil {
			return errors.New("dc1 still answers for dc2")
		}
		if !strings.Contains(err.Error(), `datacenter "dc2"`) {
			return fmt.Errorf("the error does not name dc2: %v", err)
		}
		answer = err.Error()
		return nil
	})
	if err != nil {
		t.Fatalf("cutting the WAN: %v", err)
	}
	fig("WAN cut: HTTP for dc2 from dc1 fails naming dc2", "after %s more (slowest failing request %s): %.140s", ms(took), ms(slowest), answer)
	if slowest > 10*time.Second {
		t.Errorf("a dc2 lookup from dc1 took %s to fail", slowest)
	}
	// And keep failing cleanly, fast, once the WAN pool has declared dc2's
	// servers failed.
	_, err = eventually(3*time.Minute, 500*time.Millisecond, func() error {
		_, err := healthyNodes(dc1, "web", "&dc=dc2")
		if err == nil || !strings.Contains(err.Error(), `No path to datacenter "dc2"`) {
			return fmt.Errorf("not yet No path: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	fig("WAN cut: dc1 knows dc2 has no live server (No path)", "%s after the cut", ms(time.Since(cut)))

	for _, s := range c.servers("dc2") {
		c.connect(wanNet, s, s.WanIP)
	}
	took, err = eventually(3*time.Minute, 250*time.Millisecond, func() error {
		_, _, err := crossDC(dc1, dc2)
		return err
	})
	if err != nil {
		t.Fatalf("after healing the WAN: %v", err)
	}
	fig("WAN healed: dc2 found from dc1 again", "%s after reconnecting", ms(took))
	stopWatches(t, fig, watches, 2*time.Second)
}
