package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/vmihailenco/msgpack/v5"
)

func register(t testing.TB, s *Store, idx uint64, node, id, name string, tags []string, checks ...*Check) {
	t.Helper()
	req := &RegisterRequest{Node: node, Address: "10.0.0.1", Datacenter: "dc1", Checks: checks}
	if name != "" {
		req.Service = &Service{ID: id, Service: name, Tags: tags, Port: 80, Weights: DefaultWeights}
	}
	if err := s.EnsureRegistration(idx, req); err != nil {
		t.Fatalf("register %s/%s: %v", node, id, err)
	}
}

func fired(ws memdb.WatchSet) bool {
	return ws.Watch(time.After(10*time.Millisecond)) == false
}

func TestRegistrationIndexes(t *testing.T) {
	s := NewStore()
	register(t, s, 5, "n1", "web1", "web", []string{"v1"})
	_, nodes, err := s.ServiceNodes(nil, "web", nil)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("ServiceNodes = %v, %v", nodes, err)
	}
	if got := nodes[0].Service; got.CreateIndex != 5 || got.ModifyIndex != 5 || got.Node != "n1" {
		t.Fatalf("service indexes = %d/%d node %q", got.CreateIndex, got.ModifyIndex, got.Node)
	}
	// Same registration again: nothing changes, ModifyIndex stays.
	register(t, s, 6, "n1", "web1", "web", []string{"v1"})
	_, nodes, _ = s.ServiceNodes(nil, "web", nil)
	if nodes[0].Service.ModifyIndex != 5 || nodes[0].Node.ModifyIndex != 5 {
		t.Fatalf("idempotent write moved ModifyIndex to %d/%d", nodes[0].Service.ModifyIndex, nodes[0].Node.ModifyIndex)
	}
	register(t, s, 7, "n1", "web1", "web", []string{"v2"})
	idx, nodes, _ := s.ServiceNodes(nil, "web", nil)
	if idx != 7 || nodes[0].Service.CreateIndex != 5 || nodes[0].Service.ModifyIndex != 7 {
		t.Fatalf("after update idx=%d create=%d modify=%d", idx, nodes[0].Service.CreateIndex, nodes[0].Service.ModifyIndex)
	}
}

func TestCaseInsensitiveNames(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "Node-A", "Web1", "Web", []string{"V1"})
	for _, name := range []string{"web", "WEB", "Web"} {
		_, got, err := s.CheckServiceNodes(nil, name, []string{"v1"}, false)
		if err != nil || len(got) != 1 {
			t.Fatalf("lookup %q: %v, %v", name, got, err)
		}
		if got[0].Service.Service != "Web" || got[0].Node.Node != "Node-A" {
			t.Fatalf("names not stored as given: %q %q", got[0].Service.Service, got[0].Node.Node)
		}
	}
	_, n, _, _ := s.NodeServices(nil, "node-a")
	if n == nil {
		t.Fatal("node lookup is case-sensitive")
	}
}

func TestTagFilter(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n1", "a", "web", []string{"v1", "blue"})
	register(t, s, 2, "n1", "b", "web", []string{"v1"})
	register(t, s, 3, "n2", "c", "web", nil)
	register(t, s, 4, "n2", "d", "db", []string{"v1"})
	tests := []struct {
		tags []string
		want int
	}{
		{nil, 3},
		{[]string{"v1"}, 2},
		{[]string{"V1", "blue"}, 1},
		{[]string{"blue", "v1"}, 1},
		{[]string{"green"}, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.tags), func(t *testing.T) {
			_, got, err := s.CheckServiceNodes(nil, "web", tt.tags, false)
			if err != nil || len(got) != tt.want {
				t.Fatalf("got %d instances (%v), want %d", len(got), err, tt.want)
			}
		})
	}
}

func TestHealthAndPassingOnly(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n1", "a", "web", nil, &Check{CheckID: "c-a", ServiceID: "a", Status: HealthPassing})
	register(t, s, 2, "n2", "b", "web", nil, &Check{CheckID: "c-b", ServiceID: "b", Status: HealthWarning})
	register(t, s, 3, "n3", "c", "web", nil, &Check{CheckID: "c-c", ServiceID: "c"}) // no status: critical
	_, all, _ := s.CheckServiceNodes(nil, "web", nil, false)
	_, passing, _ := s.CheckServiceNodes(nil, "web", nil, true)
	if len(all) != 3 || len(passing) != 1 || passing[0].Service.ID != "a" {
		t.Fatalf("all=%d passing=%d", len(all), len(passing))
	}
	for _, csn := range all {
		if csn.Service.ID == "c" && csn.AggregatedStatus() != HealthCritical {
			t.Fatalf("new check without status is %q, want critical", csn.AggregatedStatus())
		}
		if len(csn.Checks) != 1 || csn.Checks[0].ServiceName != "web" {
			t.Fatalf("checks of %s = %+v", csn.Service.ID, csn.Checks)
		}
	}
	// A node-level check bears on every instance of the node.
	register(t, s, 4, "n1", "", "", nil, &Check{CheckID: SerfCheckID, Status: HealthCritical})
	_, passing, _ = s.CheckServiceNodes(nil, "web", nil, true)
	if len(passing) != 0 {
		t.Fatalf("instance on a critical node still passing: %+v", passing)
	}
}

func TestServiceIndexIsolation(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n1", "web1", "web", nil, &Check{CheckID: "w", ServiceID: "web1", Status: HealthPassing})
	register(t, s, 2, "n2", "db1", "db", nil, &Check{CheckID: "d", ServiceID: "db1", Status: HealthPassing})

	ws := memdb.NewWatchSet()
	idx, _, _ := s.CheckServiceNodes(ws, "web", nil, false)
	if idx != 1 {
		t.Fatalf("web index = %d, want 1", idx)
	}
	// Writes to another service on another node must not wake web.
	if err := s.UpdateCheckStatus(3, &CheckStatusUpdate{Node: "n2", CheckID: "d", Status: HealthCritical}); err != nil {
		t.Fatal(err)
	}
	register(t, s, 4, "n2", "db2", "db", nil)
	if fired(ws) {
		t.Fatal("a change to db woke a watcher of web")
	}
	if idx, _, _ := s.CheckServiceNodes(nil, "web", nil, false); idx != 1 {
		t.Fatalf("web index moved to %d on a db write", idx)
	}
	// Its own check, a node-level check of its node, and its deletion do.
	steps := []struct {
		name  string
		idx   uint64
		write func(idx uint64) error
	}{
		{"service check", 5, func(i uint64) error {
			return s.UpdateCheckStatus(i, &CheckStatusUpdate{Node: "n1", CheckID: "w", Status: HealthCritical})
		}},
		{"node check", 6, func(i uint64) error {
			return s.EnsureRegistration(i, &RegisterRequest{Node: "n1", Address: "10.0.0.1", Datacenter: "dc1",
				Checks: []*Check{{CheckID: SerfCheckID, Status: HealthPassing}}})
		}},
		{"node address", 7, func(i uint64) error {
			return s.EnsureRegistration(i, &RegisterRequest{Node: "n1", Address: "10.0.0.9", Datacenter: "dc1"})
		}},
		{"deregister", 8, func(i uint64) error {
			return s.Deregister(i, &DeregisterRequest{Node: "n1", ServiceID: "web1"})
		}},
	}
	for _, st := range steps {
		ws := memdb.NewWatchSet()
		s.CheckServiceNodes(ws, "web", nil, false)
		if err := st.write(st.idx); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !fired(ws) {
			t.Fatalf("%s did not wake the watcher", st.name)
		}
		if idx, _, _ := s.CheckServiceNodes(nil, "web", nil, false); idx != st.idx {
			t.Fatalf("%s: web index = %d, want %d", st.name, idx, st.idx)
		}
	}
}

func TestUnknownServiceWatchWakesOnCreate(t *testing.T) {
	s := NewStore()
	ws := memdb.NewWatchSet()
	idx, got, err := s.CheckServiceNodes(ws, "api", nil, false)
	if err != nil || len(got) != 0 || idx != 1 {
		t.Fatalf("unknown service: idx=%d got=%v err=%v", idx, got, err)
	}
	register(t, s, 9, "n1", "api1", "api", nil)
	if !fired(ws) {
		t.Fatal("registering the service did not wake its watcher")
	}
}

func TestDeregister(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n1", "web1", "web", nil,
		&Check{CheckID: "svc", ServiceID: "web1"}, &Check{CheckID: "node"})
	register(t, s, 2, "n1", "web2", "web", nil)

	if err := s.Deregister(3, &DeregisterRequest{Node: "n1", CheckID: "svc"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Check("n1", "svc"); c != nil {
		t.Fatal("check still there")
	}
	if err := s.Deregister(4, &DeregisterRequest{Node: "n1", ServiceID: "nope"}); err != nil {
		t.Fatalf("deregistering an unknown service: %v", err)
	}
	if err := s.Deregister(5, &DeregisterRequest{Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	_, nodes, _ := s.Nodes(nil)
	_, svcs, _ := s.Services(nil)
	_, checks, _ := s.ChecksInState(nil, HealthAny)
	if len(nodes)+len(svcs)+len(checks) != 0 {
		t.Fatalf("node delete left %d nodes %d services %d checks", len(nodes), len(svcs), len(checks))
	}
	if idx, _, _ := s.CheckServiceNodes(nil, "web", nil, false); idx != 5 {
		t.Fatalf("deleted service index = %d, want 5 (the index row survives deletes)", idx)
	}
}

func TestBadWritesChangeNothing(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n1", "web1", "web", nil)
	tests := []struct {
		name string
		req  *RegisterRequest
		want error
	}{
		{"no node", &RegisterRequest{Service: &Service{Service: "x"}}, ErrInvalid},
		{"no service name", &RegisterRequest{Node: "n2", Service: &Service{ID: "x"}}, ErrInvalid},
		{"bad port", &RegisterRequest{Node: "n2", Service: &Service{Service: "x", Port: 70000}}, ErrInvalid},
		{"bad status", &RegisterRequest{Node: "n2", Checks: []*Check{{CheckID: "c", Status: "sick"}}}, ErrInvalid},
		{"check of unknown service", &RegisterRequest{Node: "n2", Checks: []*Check{{CheckID: "c", ServiceID: "zz"}}}, ErrNotFound},
		{"NUL in node name", &RegisterRequest{Node: "n1\x00x"}, ErrInvalid},
		{"control char in tag", &RegisterRequest{Node: "n2", Service: &Service{Service: "x", Tags: []string{"a\nb"}}}, ErrInvalid},
		{"NUL in check ID", &RegisterRequest{Node: "n2", Checks: []*Check{{CheckID: "c\x00"}}}, ErrInvalid},
		{"node id taken", &RegisterRequest{Node: "n2", ID: "11111111-1111-1111-1111-111111111111"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.LastIndex()
			err := s.EnsureRegistration(10, tt.req)
			if tt.want == nil {
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if s.LastIndex() != before {
				t.Fatal("a refused write changed the store")
			}
			if _, n, _, _ := s.NodeServices(nil, "n2"); n != nil {
				t.Fatal("a refused write left its node behind")
			}
		})
	}
	err := s.EnsureRegistration(11, &RegisterRequest{Node: "n3", ID: "11111111-1111-1111-1111-111111111111"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate node ID: err = %v", err)
	}
	if err := s.UpdateCheckStatus(12, &CheckStatusUpdate{Node: "n1", CheckID: "none", Status: HealthPassing}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of unknown check: %v", err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	s := NewStore()
	for i := range 50 {
		register(t, s, uint64(i+1), fmt.Sprintf("n%d", i%5), fmt.Sprintf("s%d", i), fmt.Sprintf("svc%d", i%7),
			[]string{"t"}, &Check{CheckID: fmt.Sprintf("c%d", i), ServiceID: fmt.Sprintf("s%d", i), Status: HealthPassing})
	}
	if err := s.Deregister(60, &DeregisterRequest{Node: "n0", ServiceID: "s0"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}

	r := NewStore()
	ws := memdb.NewWatchSet()
	r.CheckServiceNodes(ws, "svc0", nil, false)
	if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if !fired(ws) {
		t.Fatal("restore did not wake a blocked query through the abandon channel")
	}
	for _, name := range []string{"svc0", "svc3", "svc6"} {
		i1, a, _ := s.CheckServiceNodes(nil, name, nil, false)
		i2, b, _ := r.CheckServiceNodes(nil, name, nil, false)
		if i1 != i2 || len(a) != len(b) {
			t.Fatalf("%s: index %d vs %d, %d vs %d instances", name, i1, i2, len(a), len(b))
		}
	}
	if s.LastIndex() != r.LastIndex() || r.LastIndex() != 60 {
		t.Fatalf("LastIndex %d vs %d", s.LastIndex(), r.LastIndex())
	}

	// A truncated stream is refused and leaves the store as it was, even
	// one cut exactly at a row boundary.
	if err := r.Restore(bytes.NewReader(buf.Bytes()[:buf.Len()/2])); err == nil {
		t.Fatal("truncated snapshot restored")
	}
	var cut bytes.Buffer
	one := NewStore()
	register(t, one, 1, "n", "s", "svc", nil)
	if err := one.Snapshot().Persist(&cut); err != nil {
		t.Fatal(err)
	}
	// Drop the end record (its kind, a uint8 marker and the byte, and its
	// count), so the stream ends exactly after the last row. Walk the
	// stream to find where that record starts.
	rd := bytes.NewReader(cut.Bytes())
	dec := msgpack.NewDecoder(rd)
	if _, err := dec.DecodeUint(); err != nil {
		t.Fatalf("header: %v", err)
	}
	end := -1
	for end < 0 {
		at := cut.Len() - rd.Len()
		kind, err := dec.DecodeUint8()
		if err != nil {
			t.Fatalf("record kind at %d: %v", at, err)
		}
		if kind == recordEnd {
			end = at
		} else if err := dec.Skip(); err != nil {
			t.Fatalf("row at %d: %v", at, err)
		}
	}
	if _, err := dec.DecodeUint(); err != nil || rd.Len() != 0 {
		t.Fatalf("end record at %d: %v, %d bytes after it", end, err, rd.Len())
	}
	if err := r.Restore(bytes.NewReader(cut.Bytes()[:end])); !errors.Is(err, ErrInvalid) {
		t.Fatalf("snapshot without its end record: %v", err)
	}
	if _, got, _ := r.CheckServiceNodes(nil, "svc3", nil, false); len(got) == 0 {
		t.Fatal("failed restore damaged the store")
	}
}

func TestFilter(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n1", "a", "web", []string{"v1"})
	register(t, s, 2, "n2", "b", "web", []string{"v2"})
	_, all, _ := s.CheckServiceNodes(nil, "web", nil, false)
	got, err := Filter(`Service.Tags contains "v2"`, all)
	if err != nil || len(got) != 1 || got[0].Service.ID != "b" {
		t.Fatalf("filter = %+v, %v", got, err)
	}
	got, err = Filter(`Node.Node == "n1"`, all)
	if err != nil || len(got) != 1 || got[0].Service.ID != "a" {
		t.Fatalf("filter = %+v, %v", got, err)
	}
	if _, err := Filter(`Service.Tags contains`, all); !errors.Is(err, ErrBadFilter) {
		t.Fatalf("bad expression: %v", err)
	}
	if _, err := Filter(`Nope == 1`, all); !errors.Is(err, ErrBadFilter) {
		t.Fatalf("unknown selector: %v", err)
	}
}

func BenchmarkCheckServiceNodes(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			s := NewStore()
			for i := range n {
				register(b, s, uint64(i+1), fmt.Sprintf("node%d", i), "web", "web", []string{"v1"},
					&Check{CheckID: "web", ServiceID: "web", Status: HealthPassing},
					&Check{CheckID: SerfCheckID, Status: HealthPassing})
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, got, _ := s.CheckServiceNodes(nil, "web", []string{"v1"}, true); len(got) != n {
					b.Fatal(len(got))
				}
			}
		})
	}
}

func BenchmarkRegister(b *testing.B) {
	s := NewStore()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		register(b, s, uint64(i), fmt.Sprintf("node%d", i%1000), fmt.Sprintf("web%d", i), "web", nil)
	}
}

// TestAddressOwners finds nodes and instances by IP, whatever way the
// address was written, and never confuses IPv4 with IPv6 keys.
func TestAddressOwners(t *testing.T) {
	s := NewStore()
	for i, r := range []*RegisterRequest{
		{Node: "n1", Address: "10.0.0.1", Datacenter: "dc1"},
		{Node: "n2", Address: "::ffff:10.0.0.2", Datacenter: "dc1",
			Service: &Service{ID: "db1", Service: "db", Address: "2001:DB8::1"}},
		{Node: "n3", Address: "host.example", Datacenter: "dc1",
			Service: &Service{ID: "web1", Service: "web", Address: "10.0.0.1"}},
		// 0a00:0001:0000:... starts with the bytes of 10.0.0.1.
		{Node: "n4", Address: "a00:1::", Datacenter: "dc1"},
	} {
		if err := s.EnsureRegistration(uint64(i+1), r); err != nil {
			t.Fatal(err)
		}
	}
	names := func(nodes []*Node, svcs []*Service) string {
		var out []string
		for _, n := range nodes {
			out = append(out, "node:"+n.Node)
		}
		for _, sv := range svcs {
			out = append(out, "svc:"+sv.Service)
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct{ ip, want string }{
		{"10.0.0.1", "[node:n1 svc:web]"},
		{"10.0.0.2", "[node:n2]"},
		{"2001:db8:0::1", "[svc:db]"},
		{"a00:1::", "[node:n4]"},
		{"10.9.9.9", "[]"},
	} {
		idx, nodes, svcs, err := s.AddressOwners(nil, netip.MustParseAddr(tc.ip))
		if err != nil || idx != 4 {
			t.Fatalf("%s: idx %d err %v", tc.ip, idx, err)
		}
		if got := names(nodes, svcs); got != tc.want {
			t.Errorf("AddressOwners(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

func TestStats(t *testing.T) {
	s := NewStore()
	if st, err := s.Stats(); err != nil || st.Nodes != 0 || st.Instances != 0 || len(st.Checks) != 0 {
		t.Fatalf("empty store stats = %+v, %v", st, err)
	}
	register(t, s, 1, "n1", "a", "web", nil, &Check{CheckID: "c-a", ServiceID: "a", Status: HealthPassing})
	register(t, s, 2, "n1", "b", "Web", nil, &Check{CheckID: "c-b", ServiceID: "b", Status: HealthWarning})
	register(t, s, 3, "n2", "c", "db", nil, &Check{CheckID: "c-c", ServiceID: "c"})
	register(t, s, 4, "n3", "", "", nil)
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Nodes: 3, Services: 2, Instances: 3, Checks: map[HealthStatus]int{HealthPassing: 1, HealthWarning: 1, HealthCritical: 1}}
	if st.Nodes != want.Nodes || st.Services != want.Services || st.Instances != want.Instances || fmt.Sprint(st.Checks) != fmt.Sprint(want.Checks) {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
}

// A node's services are found by a prefix of the services' (node, ID) key:
// a node whose name extends another's ("n1", "n10") must not be taken for
// it, in lookups or in deletes.
func TestNodeServicesByKeyPrefix(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n1", "web1", "web", nil)
	register(t, s, 2, "N10", "web10", "web", nil)
	register(t, s, 3, "n1", "api1", "api", nil)
	_, n, svcs, err := s.NodeServices(nil, "N1")
	if err != nil || n == nil || len(svcs) != 2 {
		t.Fatalf("NodeServices(N1) = %v, %d services, %v; want n1 and its 2 services", n, len(svcs), err)
	}
	for _, svc := range svcs {
		if svc.Node != "n1" {
			t.Fatalf("NodeServices(N1) returned %s's service %s", svc.Node, svc.ID)
		}
	}
	if err := s.Deregister(4, &DeregisterRequest{Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	_, got, _ := s.ServiceNodes(nil, "web", nil)
	if len(got) != 1 || got[0].Service.ID != "web10" {
		t.Fatalf("after deleting n1, web = %v; want only N10's web10", got)
	}
	if _, got, _ := s.ServiceNodes(nil, "api", nil); len(got) != 0 {
		t.Fatalf("after deleting n1, api = %v; want none", got)
	}
}

// BenchmarkLiveHeap reports the live heap the mission's catalog holds
// (missionStore, after a collection), per instance and in all.
func BenchmarkLiveHeap(b *testing.B) {
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		s := missionStore(b)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		live := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(live/missionInstances, "B/instance")
		b.ReportMetric(live/1e6, "MB")
		runtime.KeepAlive(s)
	}
}

// BenchmarkStats is a metrics scrape's walk of the mission's catalog.
func BenchmarkStats(b *testing.B) {
	s := missionStore(b)
	b.ResetTimer()
	for range b.N {
		st, err := s.Stats()
		if err != nil || st.Instances != missionInstances || st.Services != 10_000 {
			b.Fatalf("Stats = %+v, %v", st, err)
		}
	}
}

const missionInstances = 100_000

// missionStore fills a store with the mission's catalog: 100,000
// instances of 10,000 services on 1,000 nodes, each with a tag and a meta
// key, and every tenth with a TTL check.
func missionStore(b *testing.B) *Store {
	const services, nodes = 10_000, 1_000
	s := NewStore()
	for i := range missionInstances {
		svc, k := i%services, i/services
		req := &RegisterRequest{
			Node: fmt.Sprintf("node-%04d", (svc+k*100)%nodes), Address: fmt.Sprintf("10.1.%d.%d", i%nodes/250, 1+i%nodes%250), Datacenter: "dc1",
			Service: &Service{ID: fmt.Sprintf("svc-%05d-%d", svc, k), Service: fmt.Sprintf("svc-%05d", svc), Port: 20000 + k,
				Tags: []string{fmt.Sprintf("v%d", k%3)}, Meta: map[string]string{"k": fmt.Sprint(k)}, Weights: DefaultWeights},
		}
		if i%10 == 0 {
			req.Checks = []*Check{{CheckID: "hb-" + req.Service.ID, ServiceID: req.Service.ID, Status: HealthPassing}}
		}
		if err := s.EnsureRegistration(uint64(i+1), req); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// A node's own checks, and each service's, are exact lookups that keep
// apart nodes whose names extend another's and node-level from service
// checks.
func TestNodeAndServiceChecksApart(t *testing.T) {
	s := NewStore()
	register(t, s, 1, "n1", "web1", "web", nil,
		&Check{CheckID: "svc", ServiceID: "web1", Status: HealthPassing}, &Check{CheckID: "serfHealth", Status: HealthPassing})
	register(t, s, 2, "n10", "web10", "web", nil,
		&Check{CheckID: "svc10", ServiceID: "web10", Status: HealthCritical}, &Check{CheckID: "serfHealth", Status: HealthWarning})
	_, got, err := s.CheckServiceNodes(nil, "web", nil, false)
	if err != nil || len(got) != 2 {
		t.Fatalf("CheckServiceNodes = %v, %v", got, err)
	}
	for _, csn := range got {
		var ids []string
		for _, c := range csn.Checks {
			if c.Node != csn.Node.Node {
				t.Errorf("%s's instance carries %s's check %s", csn.Node.Node, c.Node, c.CheckID)
			}
			ids = append(ids, c.CheckID)
		}
		if len(ids) != 2 {
			t.Errorf("%s's instance has checks %v, want its node's serfHealth and its own", csn.Node.Node, ids)
		}
	}
	if _, cs, _ := s.NodeChecks(nil, "N1"); len(cs) != 2 {
		t.Fatalf("NodeChecks(N1) = %d checks, want n1's 2", len(cs))
	}
	if err := s.Deregister(3, &DeregisterRequest{Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	if _, cs, _ := s.NodeChecks(nil, "n10"); len(cs) != 2 {
		t.Fatalf("after deleting n1, NodeChecks(n10) = %d checks, want 2", len(cs))
	}
}
