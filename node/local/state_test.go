package local_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/local"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
	"github.com/meshd/meshd/node/server/servertest"
)

var testNode = local.Node{ID: "22222222-2222-2222-2222-222222222222", Name: "host1", Address: "10.0.0.1", Datacenter: servertest.Datacenter}

// runState starts a State syncing to srv with the given full-sync
// interval, stopped when the test ends.
func runState(t *testing.T, srv *servertest.Server, full time.Duration) *local.State {
	t.Helper()
	st := local.New(local.Config{Node: testNode, Servers: srv.RPC, FullSyncInterval: full})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { st.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return st
}

func nodeServices(t *testing.T, srv *servertest.Server) []*catalog.Service {
	t.Helper()
	res, err := server.NodeServices.Call(t.Context(), srv.RPC, &rpc.NodeQuery{Node: testNode.Name})
	if err != nil {
		t.Fatal(err)
	}
	return res.Services
}

// TestStateSyncsAndRepairs: a change reaches the catalog and WaitFor
// returns once it has; a full sync puts back what was removed behind the
// agent's back, and removes what the agent no longer has.
func TestStateSyncsAndRepairs(t *testing.T) {
	srv := servertest.Start(t)
	st := runState(t, srv, 200*time.Millisecond)
	gen := st.AddService(&catalog.Service{ID: "web1", Service: "web", Port: 80}, []*local.Check{{
		Check: &catalog.Check{CheckID: "web1-ttl", Name: "ttl", ServiceID: "web1", Status: catalog.HealthPassing, Type: "ttl"},
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if !st.WaitFor(ctx, gen) {
		t.Fatal("the change never reached the catalog")
	}
	if svcs := nodeServices(t, srv); len(svcs) != 1 || svcs[0].ID != "web1" {
		t.Fatalf("catalog holds %v after the sync", svcs)
	}

	// Removed behind the agent's back: the next full sync repairs it.
	if _, err := server.Deregister.Call(t.Context(), srv.RPC, &catalog.DeregisterRequest{Node: testNode.Name, ServiceID: "web1"}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "a full sync to put the service back", func() bool { return len(nodeServices(t, srv)) == 1 })

	// Registered behind its back: the next full sync removes it.
	if _, err := server.Register.Call(t.Context(), srv.RPC, &catalog.RegisterRequest{Node: testNode.Name, Address: testNode.Address,
		Service: &catalog.Service{ID: "stray", Service: "stray", Port: 1}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "a full sync to remove the stray service", func() bool {
		svcs := nodeServices(t, srv)
		return len(svcs) == 1 && svcs[0].ID == "web1"
	})

	// A status change reaches the catalog; a steady heartbeat is no
	// change.
	gen, found, changed := st.UpdateCheck("web1-ttl", catalog.HealthCritical, "down")
	if !found || !changed || !st.WaitFor(ctx, gen) {
		t.Fatalf("update: found %v changed %v", found, changed)
	}
	if _, _, changed := st.UpdateCheck("web1-ttl", catalog.HealthCritical, "down"); changed {
		t.Fatal("an unchanged status counted as a change")
	}
	chk, err := srv.Store.Check(testNode.Name, "web1-ttl")
	if err != nil || chk == nil || chk.Status != catalog.HealthCritical || chk.Output != "down" {
		t.Fatalf("catalog check = %+v, %v", chk, err)
	}
}

// TestRegistryPersists: a service registered through the Registry is
// saved in the data dir and comes back, with its check's last status,
// in a new Registry over the same dir; a deregistered one does not.
func TestRegistryPersists(t *testing.T) {
	srv := servertest.Start(t)
	dir := t.TempDir()
	newRegistry := func() (*local.Registry, *local.State) {
		st := local.New(local.Config{Node: testNode, Servers: srv.RPC, FullSyncInterval: time.Minute})
		n := &notifier{}
		runner, err := checks.NewRunner(checks.Config{Notifier: n})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { runner.Shutdown(context.Background()) })
		r := local.NewRegistry(local.RegistryConfig{State: st, Runner: runner, DataDir: dir})
		n.r = r
		return r, st
	}
	r, _ := newRegistry()
	def := &config.ServiceDefinition{ID: "db1", Name: "db", Port: 5432, Check: &config.CheckDefinition{ID: "db1-ttl", TTL: time.Minute}}
	if _, err := r.RegisterService(def, false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterService(&config.ServiceDefinition{ID: "gone", Name: "gone", Port: 1}, false); err != nil {
		t.Fatal(err)
	}
	if _, found, err := r.DeregisterService("gone"); err != nil || !found {
		t.Fatalf("deregister: %v, %v", found, err)
	}
	if err := r.Heartbeat("db1-ttl", catalog.HealthPassing, "ok"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	testkit.Eventually(t, 10*time.Second, "the check state saved", func() bool {
		r2, st2 := newRegistry()
		if err := r2.Load(nil, nil); err != nil {
			t.Fatal(err)
		}
		c := st2.Check("db1-ttl")
		return c != nil && c.Status == catalog.HealthPassing
	})
	cancel()
	wg.Wait()
	r2, st2 := newRegistry()
	if err := r2.Load(nil, nil); err != nil {
		t.Fatal(err)
	}
	if st2.Service("db1") == nil || st2.Service("gone") != nil {
		t.Fatalf("reloaded services: %v", st2.Services())
	}
}

// notifier hands the runner's results to the registry made after it.
type notifier struct{ r *local.Registry }

func (n *notifier) UpdateCheck(id, status, output string) { n.r.UpdateCheck(id, status, output) }

// TestRegistryReapsOnItsClock: a service whose check has been critical for
// its deregister_critical_service_after, by the State's clock, is
// deregistered by the agent itself.
func TestRegistryReapsOnItsClock(t *testing.T) {
	srv := servertest.Start(t)
	fake := clock.NewFake(time.Unix(0, 0))
	st := local.New(local.Config{Node: testNode, Servers: srv.RPC, FullSyncInterval: time.Hour, Clock: fake})
	n := &notifier{}
	runner, err := checks.NewRunner(checks.Config{Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Shutdown(context.Background()) })
	r := local.NewRegistry(local.RegistryConfig{State: st, Runner: runner})
	n.r = r
	def := &config.ServiceDefinition{ID: "web1", Name: "web", Port: 80, Check: &config.CheckDefinition{
		ID: "web1-ttl", TTL: time.Hour, Status: catalog.HealthCritical, DeregisterCriticalServiceAfter: time.Minute}}
	if _, err := r.RegisterService(def, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	testkit.Eventually(t, 10*time.Second, "the reap loop's ticker", func() bool { return fake.Pending() > 0 })
	fake.Advance(30 * time.Second)
	if due := st.Reapable(); len(due) != 0 || st.Service("web1") == nil {
		t.Fatalf("reaped before its time: due %v", due)
	}
	fake.Advance(31 * time.Second)
	testkit.Eventually(t, 10*time.Second, "the service to be reaped", func() bool { return st.Service("web1") == nil })
}
