package server

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/internal/testkit"
)

// TestReaperOnItsClock: the leader reaps an external node's service whose
// check has been critical for its deregister_critical_service_after, as
// its clock measures it: not a moment before, and at once after.
func TestReaperOnItsClock(t *testing.T) {
	_, store, d := startLoneServer(t)
	fake := clock.NewFake(time.Unix(0, 0))
	r := &reaper{store: store, servers: d, logger: slog.New(slog.DiscardHandler), since: map[reapKey]time.Time{}, clock: fake}

	_, err := Register.Call(t.Context(), d, &catalog.RegisterRequest{Node: "ext", Address: "10.0.0.1",
		Service: &catalog.Service{ID: "db1", Service: "db", Port: 5432},
		Checks: []*catalog.Check{{CheckID: "db1-alive", ServiceID: "db1", Status: catalog.HealthCritical,
			Definition: catalog.CheckDefinition{DeregisterCriticalServiceAfter: time.Hour}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	present := func() bool {
		_, n, svcs, err := store.NodeServices(nil, "ext")
		return err == nil && n != nil && len(svcs) == 1
	}
	testkit.Eventually(t, 10*time.Second, "the reaper to arm its timer", func() bool { return fake.Pending() > 0 })
	fake.Advance(time.Hour - time.Second)
	// A change to the critical checks wakes the reaper, which looks again
	// one second before the service's time and must leave it.
	if _, err := Register.Call(t.Context(), d, &catalog.RegisterRequest{Node: "ext2", Address: "10.0.0.2",
		Checks: []*catalog.Check{{CheckID: "other", Status: catalog.HealthCritical}}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the reaper to look again", func() bool {
		ds := fake.Deadlines()
		return len(ds) == 1 && ds[0] == time.Second
	})
	if !present() {
		t.Fatal("reaped before its time")
	}
	fake.Advance(time.Second)
	testkit.Eventually(t, 10*time.Second, "the service to be reaped", func() bool { return !present() })
}
