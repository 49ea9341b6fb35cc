package node_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

// These tests drive the agent with Consul's own Go client, as the tools
// built on it (consul-template, Traefik, Prometheus) do.

func newClient(t *testing.T, a *nodetest.Agent) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = a.HTTPAddr()
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func healthIDs(t *testing.T, c *api.Client, service string, passing bool) []string {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", passing, nil)
	if err != nil {
		t.Fatalf("health service %s: %v", service, err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestConsulClientRegisterAndHealth(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	agent := c.Agent()

	self, err := agent.Self()
	if err != nil {
		t.Fatal(err)
	}
	if self["Config"]["Datacenter"] != "dc1" || self["Config"]["NodeName"] != "node1" {
		t.Fatalf("agent/self Config = %v", self["Config"])
	}
	if name, err := agent.NodeName(); err != nil || name != "node1" {
		t.Fatalf("NodeName = %q, %v", name, err)
	}

	for _, id := range []string{"web-1", "web-2"} {
		err := agent.ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "web", Port: 8080, Tags: []string{"v1"},
			Meta:  map[string]string{"version": "1"},
			Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "30s"},
		})
		if err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	svcs, _, err := c.Catalog().Services(nil)
	if err != nil || !slices.Equal(svcs["web"], []string{"v1"}) {
		t.Fatalf("catalog services = %v, %v", svcs, err)
	}
	// A new TTL check starts critical: nothing passing yet, both listed.
	if got := healthIDs(t, c, "web", true); len(got) != 0 {
		t.Fatalf("passing before any heartbeat: %v", got)
	}
	if got := healthIDs(t, c, "web", false); !slices.Equal(got, []string{"web-1", "web-2"}) {
		t.Fatalf("all instances = %v", got)
	}

	if err := agent.PassTTL("ttl-web-1", "fine"); err != nil {
		t.Fatal(err)
	}
	if got := healthIDs(t, c, "web", true); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("passing after PassTTL = %v", got)
	}
	checks, err := agent.Checks()
	if err != nil || checks["ttl-web-1"].Status != api.HealthPassing || checks["ttl-web-1"].Output != "fine" {
		t.Fatalf("agent checks = %+v, %v", checks["ttl-web-1"], err)
	}
	if err := agent.FailTTL("ttl-web-1", "broken"); err != nil {
		t.Fatal(err)
	}
	if got := healthIDs(t, c, "web", true); len(got) != 0 {
		t.Fatalf("passing after FailTTL = %v", got)
	}
	if err := agent.UpdateTTL("ttl-web-2", "slow", api.HealthWarning); err != nil {
		t.Fatal(err)
	}
	entries, _, err := c.Health().Service("web", "v1", false, nil)
	if err != nil || len(entries) != 2 {
		t.Fatalf("tagged health = %d entries, %v", len(entries), err)
	}
	for _, e := range entries {
		want := map[string]string{"web-1": api.HealthCritical, "web-2": api.HealthWarning}[e.Service.ID]
		if got := e.Checks.AggregatedStatus(); got != want {
			t.Fatalf("%s aggregated status %q, want %q", e.Service.ID, got, want)
		}
		if e.Node.Node != "node1" || e.Service.Port != 8080 || e.Service.Meta["version"] != "1" {
			t.Fatalf("entry = %+v %+v", e.Node, e.Service)
		}
	}

	cs, _, err := c.Catalog().Service("web", "v1", nil)
	if err != nil || len(cs) != 2 || cs[0].ServicePort != 8080 || cs[0].Node != "node1" {
		t.Fatalf("catalog service = %+v, %v", cs, err)
	}
	services, err := agent.Services()
	if err != nil || len(services) != 2 || services["web-1"].Service != "web" {
		t.Fatalf("agent services = %+v, %v", services, err)
	}

	if err := agent.ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	if got := healthIDs(t, c, "web", false); !slices.Equal(got, []string{"web-2"}) {
		t.Fatalf("after deregister = %v", got)
	}
	if _, _, err := agent.Service("web-1", nil); err == nil {
		t.Fatal("agent service of a deregistered ID did not fail")
	}
}

func TestConsulClientBlockingQuery(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	reg := &api.AgentServiceRegistration{ID: "api-1", Name: "api", Port: 9000,
		Check: &api.AgentServiceCheck{CheckID: "api-ttl", TTL: "1m", Status: api.HealthPassing}}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	_, meta, err := c.Health().Service("api", "", true, nil)
	if err != nil || meta.LastIndex == 0 {
		t.Fatalf("first read: index %d, %v", meta.LastIndex, err)
	}

	// A write to another service must not wake the watcher; a change to
	// this one must, within a second.
	type result struct {
		n     int
		index uint64
		at    time.Time
		err   error
	}
	done := make(chan result, 1)
	go func() {
		entries, m, err := c.Health().Service("api", "", true, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		r := result{n: len(entries), at: time.Now(), err: err}
		if m != nil {
			r.index = m.LastIndex
		}
		done <- r
	}()
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "db-1", Name: "db", Port: 5432}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("a write to another service woke the watcher: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	changed := time.Now()
	if err := c.Agent().FailTTL("api-ttl", "down"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.n != 0 || r.index <= meta.LastIndex {
			t.Fatalf("blocking query returned %+v", r)
		}
		lag := r.at.Sub(changed)
		t.Logf("blocking query returned %v after the change", lag)
		if lag > time.Second {
			t.Fatalf("blocking query took %v to see the change", lag)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query never returned after the change")
	}

	// With nothing changing, it waits out its wait and returns the same
	// index.
	_, meta, err = c.Health().Service("api", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, m2, err := c.Health().Service("api", "", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 500 * time.Millisecond})
	elapsed := time.Since(start)
	if err != nil || m2.LastIndex != meta.LastIndex {
		t.Fatalf("idle blocking query: index %d (want %d), %v", m2.LastIndex, meta.LastIndex, err)
	}
	if elapsed < 500*time.Millisecond {
		t.Fatalf("idle blocking query returned after %v, before its wait", elapsed)
	}
	t.Logf("idle blocking query with wait=500ms returned after %v", elapsed)
}

func TestConsulClientCatalog(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	cat := c.Catalog()
	_, err := cat.Register(&api.CatalogRegistration{
		Node: "ext-1", Address: "10.1.2.3", NodeMeta: map[string]string{"rack": "r1"},
		Service: &api.AgentService{ID: "redis-1", Service: "redis", Port: 6379, Tags: []string{"primary"}},
		Checks: api.HealthChecks{{CheckID: "redis-alive", Name: "alive", Status: api.HealthPassing, ServiceID: "redis-1",
			Definition: api.HealthCheckDefinition{TCP: "10.1.2.3:6379", IntervalDuration: 10 * time.Second}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nodes, _, err := cat.Nodes(nil)
	if err != nil || len(nodes) != 2 {
		t.Fatalf("nodes = %d, %v", len(nodes), err)
	}
	n, _, err := cat.Node("ext-1", nil)
	if err != nil || n == nil || n.Node.Meta["rack"] != "r1" || n.Services["redis-1"].Port != 6379 {
		t.Fatalf("node = %+v, %v", n, err)
	}
	hc, _, err := c.Health().Checks("redis", nil)
	if err != nil || len(hc) != 1 || hc[0].Definition.IntervalDuration != 10*time.Second || hc[0].ServiceName != "redis" {
		t.Fatalf("health checks = %+v, %v", hc, err)
	}
	byNode, _, err := c.Health().Node("ext-1", nil)
	if err != nil || len(byNode) != 1 {
		t.Fatalf("health node = %+v, %v", byNode, err)
	}
	passing, _, err := c.Health().State(api.HealthPassing, nil)
	var ids []string
	for _, hc := range passing {
		ids = append(ids, hc.Node+"/"+hc.CheckID)
	}
	slices.Sort(ids)
	// The server's own node carries the built-in serfHealth check.
	if err != nil || !slices.Equal(ids, []string{"ext-1/redis-alive", "node1/serfHealth"}) {
		t.Fatalf("state passing = %v, %v", ids, err)
	}
	filtered, _, err := c.Health().Service("redis", "", false, &api.QueryOptions{Filter: `Node.Meta.rack == "r2"`})
	if err != nil || len(filtered) != 0 {
		t.Fatalf("filtered = %+v, %v", filtered, err)
	}
	byMeta, _, err := cat.Services(&api.QueryOptions{Filter: `NodeMeta.rack == "r1"`})
	if err != nil || len(byMeta) != 1 || !slices.Equal(byMeta["redis"], []string{"primary"}) {
		t.Fatalf("catalog services filtered on node meta = %v, %v", byMeta, err)
	}
	none, _, err := cat.Services(&api.QueryOptions{Filter: `ServiceTags contains "replica"`})
	if err != nil || len(none) != 0 {
		t.Fatalf("catalog services filtered to nothing = %v, %v", none, err)
	}
	// ?node-meta, as Prometheus' consul_sd_configs sends it.
	for _, tt := range []struct {
		meta map[string]string
		want int
	}{{map[string]string{"rack": "r1"}, 1}, {map[string]string{"rack": "r2"}, 0}} {
		hs, _, err := c.Health().Service("redis", "", false, &api.QueryOptions{NodeMeta: tt.meta})
		cs, _, err2 := cat.Service("redis", "", &api.QueryOptions{NodeMeta: tt.meta})
		ns, _, err3 := cat.Nodes(&api.QueryOptions{NodeMeta: tt.meta})
		ss, _, err4 := cat.Services(&api.QueryOptions{NodeMeta: tt.meta})
		if err != nil || err2 != nil || err3 != nil || err4 != nil || len(hs) != tt.want || len(cs) != tt.want || len(ns) != tt.want || len(ss) != tt.want {
			t.Fatalf("node-meta %v: health %d catalog %d nodes %d services %d (%v %v %v %v), want %d each",
				tt.meta, len(hs), len(cs), len(ns), len(ss), err, err2, err3, err4, tt.want)
		}
	}
	dcs, err := cat.Datacenters()
	if err != nil || !slices.Equal(dcs, []string{"dc1"}) {
		t.Fatalf("datacenters = %v, %v", dcs, err)
	}
	leader, err := c.Status().Leader()
	if err != nil || leader == "" {
		t.Fatalf("leader = %q, %v", leader, err)
	}
	peers, err := c.Status().Peers()
	if err != nil || len(peers) != 1 || peers[0] != leader {
		t.Fatalf("peers = %v, %v", peers, err)
	}

	// Unknown names: empty answers, not errors.
	if cs, _, err := cat.Service("nope", "", nil); err != nil || len(cs) != 0 {
		t.Fatalf("unknown service = %v, %v", cs, err)
	}
	if n, _, err := cat.Node("nope", nil); err != nil || n != nil {
		t.Fatalf("unknown node = %v, %v", n, err)
	}

	if _, err := cat.Deregister(&api.CatalogDeregistration{Node: "ext-1", ServiceID: "redis-1"}, nil); err != nil {
		t.Fatal(err)
	}
	if cs, _, err := cat.Service("redis", "", nil); err != nil || len(cs) != 0 {
		t.Fatalf("after deregister = %v, %v", cs, err)
	}
	if _, err := cat.Deregister(&api.CatalogDeregistration{Node: "ext-1", ServiceID: "never"}, nil); err != nil {
		t.Fatalf("deregistering an unknown service: %v", err)
	}
}

// TestConsulClientNodeServiceList: /v1/catalog/node-services/:node, the
// list form of a node's instances, through a client agent (the read goes
// over RPC to a server, which applies ?filter) and on a server.
func TestConsulClientNodeServiceList(t *testing.T) {
	agents := nodetest.StartCluster(t, 1, 1)
	reg := &api.CatalogRegistration{Node: "ext-1", Address: "10.1.2.3", NodeMeta: map[string]string{"rack": "r1"},
		Service: &api.AgentService{ID: "redis-1", Service: "redis", Port: 6379, Tags: []string{"primary"}}}
	if _, err := newClient(t, agents[0]).Catalog().Register(reg, nil); err != nil {
		t.Fatal(err)
	}
	reg.Service = &api.AgentService{ID: "web-1", Service: "web", Port: 80, Meta: map[string]string{"v": "2"}}
	if _, err := newClient(t, agents[0]).Catalog().Register(reg, nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		cat := newClient(t, a).Catalog()
		list, meta, err := cat.NodeServiceList("ext-1", nil)
		if err != nil || list == nil || list.Node == nil || list.Node.Address != "10.1.2.3" || list.Node.Meta["rack"] != "r1" ||
			len(list.Services) != 2 || meta.LastIndex == 0 {
			t.Fatalf("%s: node-services = %+v, %+v, %v", a.Config().NodeName, list, meta, err)
		}
		ids := []string{list.Services[0].ID, list.Services[1].ID}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"redis-1", "web-1"}) {
			t.Fatalf("%s: instances %v", a.Config().NodeName, ids)
		}
		filtered, _, err := cat.NodeServiceList("ext-1", &api.QueryOptions{Filter: `Meta.v == "2"`})
		if err != nil || len(filtered.Services) != 1 || filtered.Services[0].ID != "web-1" || filtered.Services[0].Port != 80 {
			t.Fatalf("%s: filtered = %+v, %v", a.Config().NodeName, filtered, err)
		}
		if _, _, err := cat.NodeServiceList("ext-1", &api.QueryOptions{Filter: `Meta.v ==`}); err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("%s: a bad filter = %v, want a 400", a.Config().NodeName, err)
		}
		unknown, _, err := cat.NodeServiceList("nope", nil)
		if err != nil || unknown == nil || unknown.Node != nil || len(unknown.Services) != 0 {
			t.Fatalf("%s: unknown node = %+v, %v", a.Config().NodeName, unknown, err)
		}
	}
}

// Shutting down must not wait for the blocking queries watchers hold open.
func TestShutdownEndsBlockingQueries(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	_, meta, err := c.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Catalog().Services(&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 5 * time.Minute})
	}()
	// Let the query reach the agent and block.
	testkit.Eventually(t, 5*time.Second, "the blocking query to be in flight", func() bool {
		select {
		case <-done:
			t.Fatal("blocking query returned before the shutdown")
		default:
		}
		return a.OpenRequests() > 0
	})
	start := time.Now()
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-done
	took := time.Since(start)
	t.Logf("shutdown with an open blocking query took %v", took)
	if took > 10*time.Second {
		t.Fatalf("shutdown waited %v for a blocking query", took)
	}
}

func TestConsulClientPreparedQuery(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	for i, tags := range [][]string{{"v1"}, {"v2"}} {
		reg := &api.AgentServiceRegistration{ID: "db-" + tags[0], Name: "db", Port: 5432 + i, Tags: tags}
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	pq := c.PreparedQuery()
	id, _, err := pq.Create(&api.PreparedQueryDefinition{
		Name: "db-v2",
		Service: api.ServiceQuery{Service: "db", Tags: []string{"!v1"}, OnlyPassing: true,
			Failover: api.QueryFailoverOptions{NearestN: 2, Datacenters: []string{"dc2"}}},
		DNS: api.QueryDNSOptions{TTL: "10s"},
	}, nil)
	if err != nil || id == "" {
		t.Fatalf("create: %q %v", id, err)
	}
	defs, _, err := pq.Get(id, nil)
	if err != nil || len(defs) != 1 || defs[0].Name != "db-v2" || defs[0].Service.Failover.NearestN != 2 {
		t.Fatalf("get: %+v %v", defs, err)
	}
	res, _, err := pq.Execute("db-v2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Service != "db" || res.Datacenter != "dc1" || res.Failovers != 0 || res.DNS.TTL != "10s" ||
		len(res.Nodes) != 1 || res.Nodes[0].Service.ID != "db-v2" {
		t.Fatalf("execute: %+v", res)
	}
	defs[0].Service.Tags = nil
	if _, err := pq.Update(defs[0], nil); err != nil {
		t.Fatal(err)
	}
	if res, _, err := pq.Execute(id, nil); err != nil || len(res.Nodes) != 2 {
		t.Fatalf("after update: %+v %v", res, err)
	}
	if list, _, err := pq.List(nil); err != nil || len(list) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := pq.Delete(id, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pq.Execute(id, nil); err == nil {
		t.Fatal("execute of a deleted query: no error")
	}
}
