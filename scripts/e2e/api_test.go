//go:build e2e

package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

var httpClient = &http.Client{Transport: &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 8,
}}

// call sends one request to h's HTTP API and decodes a 200 answer's JSON
// into out (when out is not nil). Any other status is an error carrying the
// body, which names what failed.
func call(ctx context.Context, h host, method, path string, body, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+net.JoinHostPort(h.CtlIP, "8500")+path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Header, fmt.Errorf("%s %s on %s: %d %s", method, path, h, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.Header, fmt.Errorf("%s %s on %s: %w", method, path, h, err)
		}
	}
	return resp.Header, nil
}

func get(h host, timeout time.Duration, path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := call(ctx, h, "GET", path, nil, out)
	return err
}

// leader is the Raft address h says leads its datacenter ("" when none).
func leader(h host) (string, error) {
	var l string
	err := get(h, 2*time.Second, "/v1/status/leader", &l)
	return l, err
}

// healthyNodes lists the nodes of name's passing instances that h answers
// with over HTTP, sorted.
func healthyNodes(h host, name, query string) ([]string, error) {
	var entries []struct {
		Node struct{ Node, Address string }
	}
	if err := get(h, 10*time.Second, "/v1/health/service/"+name+"?passing"+query, &entries); err != nil {
		return nil, err
	}
	var nodes []string
	for _, e := range entries {
		nodes = append(nodes, e.Node.Node)
	}
	sort.Strings(nodes)
	return nodes, nil
}

// lookupA asks h's DNS interface for name's A records.
func lookupA(h host, name string, timeout time.Duration) ([]string, int, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	cl := &dns.Client{Timeout: timeout}
	in, _, err := cl.Exchange(m, net.JoinHostPort(h.CtlIP, "8600"))
	if err != nil {
		return nil, -1, err
	}
	var ips []string
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	sort.Strings(ips)
	if in.Rcode != dns.RcodeSuccess {
		return ips, in.Rcode, fmt.Errorf("%s from %s: %s", name, h, dns.RcodeToString[in.Rcode])
	}
	return ips, in.Rcode, nil
}

// registration is one external instance a writer registers through
// catalog/register: node e2e-writes, service "writes", ID unique per write.
type registration struct {
	Node    string
	Address string
	Service struct {
		ID      string
		Service string
		Port    int
	}
}

// newRegistration is the write every writer makes: instance id of the
// "writes" service on the external node e2e-writes.
func newRegistration(id string, port int) registration {
	var reg registration
	reg.Node, reg.Address = "e2e-writes", "10.77.9.9"
	reg.Service.ID, reg.Service.Service, reg.Service.Port = id, "writes", port
	return reg
}

// writers register instances continuously and remember every one that was
// acknowledged (HTTP 200). The targets function picks the host of each
// write, so a test can move writes away from a host it cuts off.
type writers struct {
	mu        sync.Mutex
	attempted int
	acked     map[string]bool
	errors    map[string]int // first 60 characters of each error kind
	ackTimes  []time.Time
	acks      []ack

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startWriters starts n writers, each writing every interval (at most
// maxWrites in all, so the loop is bounded even if stop is never called).
func startWriters(prefix string, n int, interval time.Duration, maxWrites int, targets func(i int) host) *writers {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{acked: map[string]bool{}, errors: map[string]int{}, cancel: cancel}
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for seq := 0; seq < maxWrites/n; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				reg := newRegistration(fmt.Sprintf("%s-%d-%d", prefix, i, seq), 1+seq%60000)
				h := targets(i + seq)
				wctx, wcancel := context.WithTimeout(context.Background(), 12*time.Second)
				sent := time.Now()
				_, err := call(wctx, h, "PUT", "/v1/catalog/register", reg, nil)
				wcancel()
				now := time.Now()
				w.mu.Lock()
				w.attempted++
				if err == nil {
					w.acked[reg.Service.ID] = true
					w.ackTimes = append(w.ackTimes, now)
					w.acks = append(w.acks, ack{id: reg.Service.ID, through: h.Node, sent: sent, acked: now})
				} else {
					kind := err.Error()
					if len(kind) > 90 {
						kind = kind[:90]
					}
					w.errors[kind]++
				}
				w.mu.Unlock()
			}
		}()
	}
	return w
}

// ack is one acknowledged write: through which host, sent and answered
// when.
type ack struct {
	id, through string
	sent, acked time.Time
}

// ackedThrough lists the writes sent through h after from and
// acknowledged before to.
func (w *writers) ackedThrough(h host, from, to time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for _, a := range w.acks {
		if a.through == h.Node && a.sent.After(from) && a.acked.Before(to) {
			ids = append(ids, a.id)
		}
	}
	return ids
}

// slowest describes the n writes that took longest to be acknowledged:
// when, through which host, and how long.
func (w *writers) slowest(n int) string {
	w.mu.Lock()
	acks := slices.Clone(w.acks)
	w.mu.Unlock()
	slices.SortFunc(acks, func(a, b ack) int { return cmp.Compare(b.acked.Sub(b.sent), a.acked.Sub(a.sent)) })
	var out []string
	for _, a := range acks[:min(n, len(acks))] {
		out = append(out, fmt.Sprintf("%s sent %s through %s, acknowledged %s later", a.id, a.sent.Format("15:04:05.000"), a.through, ms(a.acked.Sub(a.sent))))
	}
	return strings.Join(out, "; ")
}

func (w *writers) stop() {
	w.cancel()
	w.wg.Wait()
}

// ackedSince counts the writes acknowledged after t.
func (w *writers) ackedSince(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, at := range w.ackTimes {
		if at.After(t) {
			n++
		}
	}
	return n
}

func (w *writers) errorSummary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var parts []string
	for k, n := range w.errors {
		parts = append(parts, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// written lists the IDs of the "writes" instances h holds (stale: h's own
// copy of the catalog) and the index it is at.
func written(h host) (map[string]bool, string, error) {
	var entries []struct{ ServiceID string }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hdr, err := call(ctx, h, "GET", "/v1/catalog/service/writes?stale", nil, &entries)
	if err != nil {
		return nil, "", err
	}
	ids := make(map[string]bool, len(entries))
	for _, e := range entries {
		ids[e.ServiceID] = true
	}
	return ids, hdr.Get("X-Consul-Index"), nil
}

// verify checks that every acknowledged write is in the catalog of every
// server (once they have converged) and returns attempted, acknowledged and
// found figures.
func (w *writers) verify(servers []host) (attempted, acked, found int, err error) {
	// Copy what was acknowledged, so no lock is held across the reads.
	w.mu.Lock()
	attempted = w.attempted
	ackedIDs := make([]string, 0, len(w.acked))
	for id := range w.acked {
		ackedIDs = append(ackedIDs, id)
	}
	w.mu.Unlock()
	var ids map[string]bool
	_, err = eventually(60*time.Second, 250*time.Millisecond, func() error {
		var first string
		for i, s := range servers {
			got, index, err := written(s)
			if err != nil {
				return err
			}
			if i == 0 {
				ids, first = got, index
				continue
			}
			if index != first || len(got) != len(ids) {
				return fmt.Errorf("%s is at index %s with %d writes, %s at %s with %d", s, index, len(got), servers[0], first, len(ids))
			}
			for id := range got {
				if !ids[id] {
					return fmt.Errorf("%s has %s and %s has not", s, id, servers[0])
				}
			}
		}
		return nil
	})
	if err != nil {
		return attempted, len(ackedIDs), 0, fmt.Errorf("servers' catalogs differ: %w", err)
	}
	var missing []string
	for _, id := range ackedIDs {
		if ids[id] {
			found++
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		if len(missing) > 10 {
			missing = missing[:10]
		}
		err = fmt.Errorf("%d acknowledged writes are missing from every server's catalog, e.g. %v", len(ackedIDs)-found, missing)
	}
	return attempted, len(ackedIDs), found, err
}

// watch asks one host a question (a DNS lookup, an HTTP read) every
// interval and records the longest stretch without a good answer.
type watch struct {
	h     host
	what  string
	probe func() error

	mu       sync.Mutex
	polls    int
	failures int
	lastGood time.Time
	maxGap   time.Duration
	lastErr  string

	cancel context.CancelFunc
	done   chan struct{}
}

// startWatch probes every interval, for at most limit (a bound on the loop
// in case stop is never called).
func startWatch(h host, what string, interval, limit time.Duration, probe func() error) *watch {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	d := &watch{h: h, what: what, probe: probe, lastGood: time.Now(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			err := probe()
			now := time.Now()
			d.mu.Lock()
			d.polls++
			if err == nil {
				d.maxGap = max(d.maxGap, now.Sub(d.lastGood))
				d.lastGood = now
			} else {
				d.failures++
				d.lastErr = err.Error()
			}
			d.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return d
}

// stop ends the watch and returns its figures; a watch that ends without a
// good answer since lastGood counts that stretch too.
func (d *watch) stop() (polls, failures int, maxGap time.Duration, lastErr string) {
	d.cancel()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maxGap = max(d.maxGap, time.Since(d.lastGood))
	return d.polls, d.failures, d.maxGap, d.lastErr
}
