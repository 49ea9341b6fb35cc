package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meshd/meshd/node/nodetest"
)

// federation is two datacenters of three servers and a client each, their
// servers in one WAN pool.
type federation struct {
	dc1, dc2         []*nodetest.Agent // servers first, the client last
	client1, client2 *nodetest.Agent
}

func startFederation(t *testing.T) *federation {
	t.Helper()
	f := &federation{
		dc1: nodetest.StartClusterWith(t, 3, 1, nodetest.Options{Datacenter: "dc1", WAN: true}),
		dc2: nodetest.StartClusterWith(t, 3, 1, nodetest.Options{Datacenter: "dc2", WAN: true}),
	}
	f.client1, f.client2 = f.dc1[3], f.dc2[3]
	// One WAN join, from a dc2 server to a dc1 server: flood joins bring
	// the other servers of both datacenters in.
	if code, body := do(t, "PUT", f.dc2[1].HTTP+"/v1/agent/join/"+f.dc1[0].WANAddr()+"?wan=1", ""); code != 200 {
		t.Fatalf("join -wan: %d %s", code, body)
	}
	for _, s := range append(f.dc1[:3:3], f.dc2[:3]...) {
		nodetest.Eventually(t, 30*time.Second, "six alive servers in "+s.Config().NodeName+"'s WAN pool", func() bool {
			var ms []struct {
				Name   string
				Status int
			}
			getJSONT(t, s.HTTP+"/v1/agent/members?wan", &ms)
			alive := 0
			for _, m := range ms {
				if m.Status == 1 {
					alive++
				}
			}
			return alive == 6
		})
	}
	return f
}

func getJSONT(t *testing.T, url string, out any) {
	t.Helper()
	code, body := do(t, "GET", url, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

type healthEntry struct {
	Node struct {
		Node, Datacenter string
	}
	Service struct {
		ID   string
		Port int
	}
}

func healthEntries(t *testing.T, url string) []healthEntry {
	t.Helper()
	var out []healthEntry
	getJSONT(t, url, &out)
	return out
}

func registerAgentService(t *testing.T, a *nodetest.Agent, id, name string, port int) {
	t.Helper()
	body := fmt.Sprintf(`{"ID": %q, "Name": %q, "Port": %d, "Address": "127.0.0.%d"}`, id, name, port, 10+port%100)
	if code, resp := do(t, "PUT", a.HTTP+"/v1/agent/service/register", body); code != 200 {
		t.Fatalf("register %s: %d %s", id, code, resp)
	}
}

func TestFederation(t *testing.T) {
	f := startFederation(t)
	registerAgentService(t, f.client2, "api-1", "api", 9001)
	registerAgentService(t, f.client1, "web-1", "web", 8001)

	t.Run("members -wan names servers node.dc", func(t *testing.T) {
		var ms []struct{ Name string }
		getJSONT(t, f.dc1[2].HTTP+"/v1/agent/members?wan", &ms)
		var names []string
		for _, m := range ms {
			names = append(names, m.Name)
		}
		want := []string{"server1.dc1", "server1.dc2", "server2.dc1", "server2.dc2", "server3.dc1", "server3.dc2"}
		if !slices.Equal(names, want) {
			t.Fatalf("WAN members %v, want %v", names, want)
		}
		getJSONT(t, f.client1.HTTP+"/v1/agent/members?wan", &ms)
		if len(ms) != 0 {
			t.Fatalf("a client lists WAN members %v; it has no WAN pool", ms)
		}
	})

	t.Run("datacenters", func(t *testing.T) {
		for _, a := range []*nodetest.Agent{f.client1, f.dc2[0]} {
			var dcs []string
			getJSONT(t, a.HTTP+"/v1/catalog/datacenters", &dcs)
			slices.Sort(dcs)
			if !slices.Equal(dcs, []string{"dc1", "dc2"}) {
				t.Fatalf("%s: datacenters %v", a.Config().NodeName, dcs)
			}
		}
	})

	t.Run("a dc2 service from dc1 over HTTP", func(t *testing.T) {
		url := f.client1.HTTP + "/v1/health/service/api?dc=dc2"
		var got []healthEntry
		nodetest.Eventually(t, 10*time.Second, "api in dc2 seen from dc1", func() bool {
			got = healthEntries(t, url)
			return len(got) == 1
		})
		if got[0].Node.Datacenter != "dc2" || got[0].Node.Node != "client1" || got[0].Service.Port != 9001 {
			t.Fatalf("entry %+v, want api-1 on dc2's client1", got[0])
		}
		// Not in dc1 itself, and the cached read goes to dc2 as well.
		if got := healthEntries(t, f.client1.HTTP+"/v1/health/service/api"); len(got) != 0 {
			t.Fatalf("api in dc1: %+v", got)
		}
		// A cached read is a stale one: a dc2 follower may lag the leader
		// by a moment, and the cache's watch then brings the change.
		nodetest.Eventually(t, 10*time.Second, "api in the dc1 client's cache", func() bool {
			got := healthEntries(t, url+"&cached")
			return len(got) == 1 && got[0].Node.Datacenter == "dc2"
		})
		var svcs map[string][]string
		getJSONT(t, f.client1.HTTP+"/v1/catalog/services?dc=DC2", &svcs)
		if _, ok := svcs["api"]; !ok {
			t.Fatalf("catalog/services?dc=DC2 = %v, want api", svcs)
		}
		var leader string
		getJSONT(t, f.client1.HTTP+"/v1/status/leader?dc=dc2", &leader)
		var dc2Servers []string
		for _, s := range f.dc2[:3] {
			dc2Servers = append(dc2Servers, s.ServerAddr())
		}
		if !slices.Contains(dc2Servers, leader) {
			t.Fatalf("status/leader?dc=dc2 = %q, want one of %v", leader, dc2Servers)
		}
	})

	t.Run("a dc2 service from dc1 over DNS", func(t *testing.T) {
		for _, a := range []*nodetest.Agent{f.client1, f.dc1[1]} {
			var r *mdns.Msg
			nodetest.Eventually(t, 10*time.Second, "api.service.dc2.consul from "+a.Config().NodeName, func() bool {
				r = query(t, a.DNS, "api.service.dc2.consul", mdns.TypeSRV, "udp")
				return r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 1
			})
			srv := r.Answer[0].(*mdns.SRV)
			if srv.Port != 9001 || !strings.HasSuffix(srv.Target, ".dc2.consul.") {
				t.Fatalf("SRV %v, want port 9001 and a dc2 target", srv)
			}
			if r := query(t, a.DNS, "api.service.consul", mdns.TypeA, "udp"); r.Rcode != mdns.RcodeNameError {
				t.Fatalf("api.service.consul (dc1) rcode %s, want NXDOMAIN", mdns.RcodeToString[r.Rcode])
			}
			r = query(t, a.DNS, "client1.node.dc2.consul", mdns.TypeA, "udp")
			if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("client1.node.dc2.consul: %v", r)
			}
		}
	})

	t.Run("a blocking query across datacenters", func(t *testing.T) {
		url := f.client1.HTTP + "/v1/health/service/api?dc=dc2"
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		index := resp.Header.Get("X-Consul-Index")
		type result struct {
			n    int
			took time.Duration
			err  error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			resp, err := http.Get(url + "&index=" + index + "&wait=60s")
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			var got []healthEntry
			err = json.NewDecoder(resp.Body).Decode(&got)
			done <- result{n: len(got), took: time.Since(start), err: err}
		}()
		// Give the query a moment to block (it answers with either count
		// if it has not yet), then change the service in dc2.
		registerAgentService(t, f.client2, "api-2", "api", 9002)
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Logf("blocking query across datacenters returned %d instances after %v", r.n, r.took)
			if r.took > 30*time.Second {
				t.Fatalf("took %v, want well under the 60s wait", r.took)
			}
		case <-time.After(70 * time.Second):
			t.Fatal("the blocking query did not return")
		}
		nodetest.Eventually(t, 10*time.Second, "two api instances from dc1", func() bool {
			return len(healthEntries(t, url)) == 2
		})
	})

	t.Run("a write to dc2 from dc1", func(t *testing.T) {
		body := `{"Node": "ext-db", "Address": "127.0.0.55", "Service": {"Service": "db", "Port": 5432}}`
		if code, resp := do(t, "PUT", f.client1.HTTP+"/v1/catalog/register?dc=dc2", body); code != 200 {
			t.Fatalf("register in dc2: %d %s", code, resp)
		}
		body = `{"Node": "ext-db", "Datacenter": "dc2", "Address": "127.0.0.55", "Service": {"ID": "db2", "Service": "db", "Port": 5433}}`
		if code, resp := do(t, "PUT", f.client1.HTTP+"/v1/catalog/register", body); code != 200 {
			t.Fatalf("register with Datacenter dc2: %d %s", code, resp)
		}
		if got := healthEntries(t, f.client2.HTTP+"/v1/health/service/db"); len(got) != 2 || got[0].Node.Datacenter != "dc2" {
			t.Fatalf("db in dc2: %+v", got)
		}
		if got := healthEntries(t, f.client1.HTTP+"/v1/health/service/db"); len(got) != 0 {
			t.Fatalf("db in dc1: %+v", got)
		}
		if code, resp := do(t, "PUT", f.client1.HTTP+"/v1/catalog/deregister?dc=dc2", `{"Node": "ext-db"}`); code != 200 {
			t.Fatalf("deregister in dc2: %d %s", code, resp)
		}
		if got := healthEntries(t, f.client2.HTTP+"/v1/health/service/db"); len(got) != 0 {
			t.Fatalf("db still in dc2: %+v", got)
		}
	})

	t.Run("errors name the datacenter", func(t *testing.T) {
		code, body := do(t, "GET", f.client1.HTTP+"/v1/health/service/api?dc=dc9", "")
		if code != 500 || !strings.Contains(body, `No path to datacenter "dc9"`) {
			t.Fatalf("?dc=dc9: %d %q", code, body)
		}
		code, body = do(t, "GET", f.client1.HTTP+"/v1/health/service/api?dc=dc_9!", "")
		if code != 400 || !strings.Contains(body, "dc") {
			t.Fatalf("?dc=dc_9!: %d %q", code, body)
		}
		code, body = do(t, "PUT", f.client1.HTTP+"/v1/catalog/register", `{"Node": "x", "Address": "127.0.0.1", "Datacenter": "dc9"}`)
		if code != 500 || !strings.Contains(body, `No path to datacenter "dc9"`) {
			t.Fatalf("register in dc9: %d %q", code, body)
		}
	})

	t.Run("dc1 keeps serving when every dc2 server is stopped", func(t *testing.T) {
		for _, s := range f.dc2[:3] {
			if err := s.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		// Local reads and writes, over HTTP and DNS, as before.
		if got := healthEntries(t, f.client1.HTTP+"/v1/health/service/web"); len(got) != 1 {
			t.Fatalf("web in dc1: %+v", got)
		}
		if got := healthEntries(t, f.dc1[0].HTTP+"/v1/health/service/web?consistent"); len(got) != 1 {
			t.Fatalf("web in dc1, consistent: %+v", got)
		}
		registerAgentService(t, f.client1, "web-2", "web", 8002)
		nodetest.Eventually(t, 10*time.Second, "web-2 in dc1", func() bool {
			return len(healthEntries(t, f.client1.HTTP+"/v1/health/service/web")) == 2
		})
		nodetest.Eventually(t, 10*time.Second, "web.service.consul with two answers", func() bool {
			r := query(t, f.client1.DNS, "web.service.consul", mdns.TypeA, "udp")
			return r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 2
		})
		// dc2 answers a clear error, quickly once gossip saw it go.
		start := time.Now()
		code, body := do(t, "GET", f.client1.HTTP+"/v1/health/service/api?dc=dc2", "")
		t.Logf("first dc2 read after the stop: %d %q in %v", code, strings.TrimSpace(body), time.Since(start))
		if code != 500 || !strings.Contains(body, `"dc2"`) {
			t.Fatalf("dc2 read with dc2 down: %d %q, want 500 naming dc2", code, body)
		}
		nodetest.Eventually(t, 30*time.Second, "dc2 declared gone", func() bool {
			code, body := do(t, "GET", f.client1.HTTP+"/v1/health/service/api?dc=dc2", "")
			return code == 500 && strings.Contains(body, `No path to datacenter "dc2"`)
		})
		start = time.Now()
		code, _ = do(t, "GET", f.client1.HTTP+"/v1/health/service/api?dc=dc2", "")
		if took := time.Since(start); code != 500 || took > 2*time.Second {
			t.Fatalf("dc2 read once gone: %d in %v, want a prompt 500", code, took)
		}
		if r := query(t, f.client1.DNS, "api.service.dc2.consul", mdns.TypeA, "udp"); r.Rcode != mdns.RcodeServerFailure {
			t.Fatalf("api.service.dc2.consul with dc2 down: rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
		}
		var dcs []string
		getJSONT(t, f.client1.HTTP+"/v1/catalog/datacenters", &dcs)
		if len(dcs) != 2 || dcs[0] != "dc1" {
			t.Fatalf("datacenters with dc2 down: %v, want dc1 first (dc2 has no alive server)", dcs)
		}
	})
}
