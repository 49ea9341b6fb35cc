package node_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
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
		testkit.Eventually(t, 30*time.Second, "six alive servers in "+s.Config().NodeName+"'s WAN pool", func() bool {
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
		testkit.Eventually(t, 10*time.Second, "api in dc2 seen from dc1", func() bool {
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
		testkit.Eventually(t, 10*time.Second, "api in the dc1 client's cache", func() bool {
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
			testkit.Eventually(t, 10*time.Second, "api.service.dc2.consul from "+a.Config().NodeName, func() bool {
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
		// Once the query is open on the dc1 client, change the service in
		// dc2: the change must wake it.
		testkit.Eventually(t, 10*time.Second, "the blocking query open", func() bool { return f.client1.OpenRequests() >= 1 })
		registerAgentService(t, f.client2, "api-2", "api", 9002)
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Logf("blocking query across datacenters returned %d instances after %v", r.n, r.took)
			if r.n != 2 || r.took > 30*time.Second {
				t.Fatalf("took %v, want well under the 60s wait", r.took)
			}
		case <-time.After(70 * time.Second):
			t.Fatal("the blocking query did not return")
		}
		testkit.Eventually(t, 10*time.Second, "two api instances from dc1", func() bool {
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

	t.Run("prepared queries", func(t *testing.T) {
		body := `{"ID": "pay-1", "Name": "pay", "Port": 7001, "Check": {"TTL": "60s", "Status": "passing"}}`
		if code, resp := do(t, "PUT", f.client1.HTTP+"/v1/agent/service/register", body); code != 200 {
			t.Fatalf("register pay-1: %d %s", code, resp)
		}
		registerAgentService(t, f.client2, "pay-2", "pay", 7002)
		create := func(a *nodetest.Agent, query, body string) string {
			t.Helper()
			code, resp := do(t, "POST", a.HTTP+"/v1/query"+query, body)
			if code != 200 {
				t.Fatalf("create query %s: %d %s", body, code, resp)
			}
			var out struct{ ID string }
			if err := json.Unmarshal([]byte(resp), &out); err != nil || out.ID == "" {
				t.Fatalf("create answer %q: %v", resp, err)
			}
			return out.ID
		}
		nearest := create(f.client1, "", `{"Name": "pay-near", "Service": {"Service": "pay", "Failover": {"NearestN": 1}}, "DNS": {"TTL": "7s"}}`)
		listed := create(f.dc1[1], "", `{"Name": "pay-listed", "Service": {"Service": "pay", "OnlyPassing": true, "Failover": {"Datacenters": ["dc9", "dc2"]}}}`)
		none := create(f.client1, "", `{"Name": "pay-local", "Service": {"Service": "pay"}}`)

		type result struct {
			Service    string
			Datacenter string
			Failovers  int
			Nodes      []healthEntry
			DNS        struct{ TTL string }
		}
		execute := func(idOrName string) result {
			t.Helper()
			var r result
			getJSONT(t, f.client1.HTTP+"/v1/query/"+idOrName+"/execute", &r)
			return r
		}
		testkit.Eventually(t, 10*time.Second, "pay-near answered from dc1", func() bool {
			r := execute("pay-near")
			return r.Datacenter == "dc1" && r.Failovers == 0 && len(r.Nodes) == 1 && r.Nodes[0].Service.ID == "pay-1"
		})
		if r := execute(nearest); r.Service != "pay" || r.DNS.TTL != "7s" {
			t.Fatalf("by ID: %+v", r)
		}

		// dc1's instance turns critical: both failover queries answer
		// from dc2, and say so; the one without failover finds nothing.
		if code, resp := do(t, "PUT", f.client1.HTTP+"/v1/agent/check/fail/service:pay-1", ""); code != 200 {
			t.Fatalf("fail pay-1: %d %s", code, resp)
		}
		var r result
		testkit.Eventually(t, 10*time.Second, "pay-near failing over to dc2", func() bool {
			r = execute("pay-near")
			return r.Datacenter == "dc2"
		})
		if r.Failovers != 1 || len(r.Nodes) != 1 || r.Nodes[0].Service.ID != "pay-2" || r.Nodes[0].Node.Datacenter != "dc2" {
			t.Fatalf("pay-near after the failure: %+v", r)
		}
		if r := execute(listed); r.Datacenter != "dc2" || r.Failovers != 2 || len(r.Nodes) != 1 {
			t.Fatalf("pay-listed (dc9 has no path, then dc2): %+v", r)
		}
		if r := execute(none); r.Datacenter != "dc1" || len(r.Nodes) != 0 {
			t.Fatalf("pay-local: %+v", r)
		}
		// DNS reads are stale ones: a follower may lag by a moment.
		var m *mdns.Msg
		testkit.Eventually(t, 10*time.Second, "pay-near.query.consul from dc2", func() bool {
			m = query(t, f.client1.DNS, "pay-near.query.consul", mdns.TypeSRV, "udp")
			return m.Rcode == mdns.RcodeSuccess && len(m.Answer) == 1 && m.Answer[0].(*mdns.SRV).Port == 7002
		})
		if srv := m.Answer[0].(*mdns.SRV); srv.Port != 7002 || !strings.HasSuffix(srv.Target, ".dc2.consul.") || srv.Hdr.Ttl != 7 {
			t.Fatalf("pay-near.query.consul SRV %v, want dc2's port 7002, a dc2 target and TTL 7", srv)
		}
		if m := query(t, f.client1.DNS, "pay-local.query.consul", mdns.TypeA, "udp"); m.Rcode != mdns.RcodeNameError {
			t.Fatalf("pay-local.query.consul rcode %s, want NXDOMAIN", mdns.RcodeToString[m.Rcode])
		}

		// And back when it recovers.
		if code, resp := do(t, "PUT", f.client1.HTTP+"/v1/agent/check/pass/service:pay-1", ""); code != 200 {
			t.Fatalf("pass pay-1: %d %s", code, resp)
		}
		testkit.Eventually(t, 10*time.Second, "pay-near back in dc1", func() bool {
			r := execute("pay-near")
			return r.Datacenter == "dc1" && r.Failovers == 0 && len(r.Nodes) == 1
		})
		testkit.Eventually(t, 10*time.Second, "pay-near.query.consul back in dc1", func() bool {
			m := query(t, f.client1.DNS, "pay-near.query.consul", mdns.TypeSRV, "udp")
			return m.Rcode == mdns.RcodeSuccess && len(m.Answer) == 1 && m.Answer[0].(*mdns.SRV).Port == 7001
		})

		// Read, list, update, delete; a query lives in its datacenter.
		var qs []struct {
			ID, Name string
			Service  struct{ Service string }
		}
		getJSONT(t, f.client1.HTTP+"/v1/query", &qs)
		if len(qs) != 3 {
			t.Fatalf("list: %+v", qs)
		}
		getJSONT(t, f.client1.HTTP+"/v1/query/"+listed, &qs)
		if len(qs) != 1 || qs[0].Name != "pay-listed" {
			t.Fatalf("get: %+v", qs)
		}
		if code, resp := do(t, "PUT", f.client1.HTTP+"/v1/query/"+none, `{"Name": "pay-local", "Service": {"Service": "api"}}`); code != 200 {
			t.Fatalf("update: %d %s", code, resp)
		}
		if r := execute("pay-local"); r.Service != "api" {
			t.Fatalf("after update: %+v", r)
		}
		if code, resp := do(t, "DELETE", f.client1.HTTP+"/v1/query/"+none, ""); code != 200 {
			t.Fatalf("delete: %d %s", code, resp)
		}
		for _, path := range []string{"/v1/query/" + none, "/v1/query/" + none + "/execute", "/v1/query/pay-local/execute"} {
			if code, _ := do(t, "GET", f.client1.HTTP+path, ""); code != 404 {
				t.Fatalf("GET %s after delete: %d, want 404", path, code)
			}
		}
		remote := create(f.client1, "?dc=dc2", `{"Name": "pay-there", "Service": {"Service": "pay"}}`)
		getJSONT(t, f.client2.HTTP+"/v1/query/"+remote, &qs)
		if len(qs) != 1 || qs[0].Name != "pay-there" {
			t.Fatalf("created with ?dc=dc2, read in dc2: %+v", qs)
		}
		var rr result
		getJSONT(t, f.client1.HTTP+"/v1/query/pay-there/execute?dc=dc2", &rr)
		if rr.Datacenter != "dc2" || len(rr.Nodes) != 1 {
			t.Fatalf("executed with ?dc=dc2: %+v", rr)
		}
		for _, bad := range []struct{ body, field string }{
			{`{"Name": "x"}`, "Service.Service"},
			{`{"Name": "dup", "Service": {"Service": "pay"}}`, ""},
			{`{"Name": "pay-near", "Service": {"Service": "pay"}}`, "Name"},
			{`{"Service": {"Service": "pay", "Failover": {"NearestN": -1}}}`, "NearestN"},
			{`{"Service": {"Service": "pay", "Failover": {"Datacenters": ["DC 2"]}}}`, "Datacenters[0]"},
			{`{"Service": {"Service": "pay"}, "DNS": {"TTL": "soon"}}`, "DNS.TTL"},
			{`{"Template": {"Type": "name_prefix_match"}, "Service": {"Service": "pay"}}`, "Template"},
		} {
			code, resp := do(t, "POST", f.client1.HTTP+"/v1/query", bad.body)
			if bad.field == "" {
				if code != 200 {
					t.Fatalf("create %s: %d %s", bad.body, code, resp)
				}
				continue
			}
			if code != 400 || !strings.Contains(resp, bad.field) {
				t.Errorf("create %s: %d %q, want 400 naming %s", bad.body, code, resp, bad.field)
			}
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
		testkit.Eventually(t, 10*time.Second, "web-2 in dc1", func() bool {
			return len(healthEntries(t, f.client1.HTTP+"/v1/health/service/web")) == 2
		})
		testkit.Eventually(t, 10*time.Second, "web.service.consul with two answers", func() bool {
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
		testkit.Eventually(t, 30*time.Second, "dc2 declared gone", func() bool {
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

	t.Run("dc2 is served again once its servers are back", func(t *testing.T) {
		// The same data dirs and ports: the servers rejoin their LAN pool
		// and the WAN pool from their gossip snapshots, by themselves.
		for _, s := range f.dc2[:3] {
			cfg := s.Config()
			port := func(addr string) *int {
				_, p, err := net.SplitHostPort(addr)
				if err != nil {
					t.Fatal(err)
				}
				n, _ := strconv.Atoi(p)
				return &n
			}
			server, lan, wan := port(s.ServerAddr()), port(s.GossipAddr()), port(s.WANAddr())
			nodetest.Launch(t, nodetest.Options{Cluster: true, NodeName: cfg.NodeName, DataDir: cfg.DataDir, BootstrapExpect: 3,
				Datacenter: "dc2", WAN: true, Edit: func(f *config.File) {
					f.Ports.Server, f.Ports.SerfLAN, f.Ports.SerfWAN = server, lan, wan
				}})
		}
		start := time.Now()
		testkit.Eventually(t, 60*time.Second, "api in dc2 seen from dc1 again", func() bool {
			return len(healthEntries(t, f.client1.HTTP+"/v1/health/service/api?dc=dc2")) == 2
		})
		testkit.Eventually(t, 30*time.Second, "api.service.dc2.consul answering again", func() bool {
			r := query(t, f.client1.DNS, "api.service.dc2.consul", mdns.TypeA, "udp")
			return r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 2
		})
		t.Logf("dc2 answered from dc1 again %v after its servers restarted", time.Since(start))
	})
}
