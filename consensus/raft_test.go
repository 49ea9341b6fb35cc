package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// serve accepts Raft connections on ln the way the node's multiplexer
// does: read the first byte, hand the rest to the server.
func serve(t testing.TB, ln net.Listener, s *Server) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil || b[0] != RaftConnByte {
				c.Close()
				continue
			}
			go s.HandleConn(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// launch starts a server on a fresh loopback listener with the settings
// edit makes to a test config (ID, data dir, Raft timings...). It is shut
// down at cleanup.
func launch(t testing.TB, store *catalog.Store, edit func(*Config)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NodeID = "11111111-2222-3333-4444-555555555555"
	cfg.Advertise = ln.Addr()
	cfg.Raft = DevRaftConfig()
	cfg.Logger = testLogger(t)
	edit(&cfg)
	s, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, s)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// startServer starts a lone server that bootstraps itself and waits until
// it leads and has replayed its log.
func startServer(t testing.TB, dir string, store *catalog.Store) *Server {
	t.Helper()
	s := launch(t, store, func(c *Config) { c.DataDir, c.Bootstrap = dir, true })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatalf("no leader: %v", err)
	}
	select {
	case <-s.Ready():
	case <-ctx.Done():
		t.Fatal("never ready")
	}
	return s
}

func registerN(t testing.TB, s *Server, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		req := &catalog.RegisterRequest{
			Node: fmt.Sprintf("node%d", i%10), Address: "10.0.0.1", Datacenter: "dc1",
			Service: &catalog.Service{ID: fmt.Sprintf("web-%d", i), Service: "web", Port: 8000 + i%1000},
			Checks:  []*catalog.Check{{CheckID: fmt.Sprintf("chk-%d", i), ServiceID: fmt.Sprintf("web-%d", i), Status: catalog.HealthPassing}},
		}
		if _, err := s.Apply(context.Background(), RegisterType, req); err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
	}
}

func TestApplyInMemory(t *testing.T) {
	store := catalog.NewStore()
	s := startServer(t, "", store)
	idx, err := s.Apply(context.Background(), RegisterType, &catalog.RegisterRequest{
		Node: "n1", Address: "127.0.0.1", Service: &catalog.Service{Service: "web", Port: 80},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, nodes, _ := store.ServiceNodes(nil, "web", nil)
	if len(nodes) != 1 || got != idx {
		t.Fatalf("after apply at %d: index %d, %d instances", idx, got, len(nodes))
	}
	// A refused command is an answer, identical on every replica.
	_, err = s.Apply(context.Background(), RegisterType, &catalog.RegisterRequest{Node: "n1", Service: &catalog.Service{Port: 80}})
	if !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("bad register: %v", err)
	}
	if peers, err := s.Peers(); err != nil || len(peers) != 1 {
		t.Fatalf("peers = %v, %v", peers, err)
	}
}

func TestRestartKeepsRegistrations(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			dir := t.TempDir()
			s := startServer(t, dir, catalog.NewStore())
			registerN(t, s, 0, 600)
			if snapshot {
				if err := s.TakeSnapshot(); err != nil {
					t.Fatal(err)
				}
			}
			registerN(t, s, 600, 1000) // some after the snapshot too
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}

			store := catalog.NewStore()
			startServer(t, dir, store)
			_, got, err := store.CheckServiceNodes(nil, "web", nil, true)
			if err != nil || len(got) != 1000 {
				t.Fatalf("after restart: %d passing instances (%v), want 1000", len(got), err)
			}
		})
	}
}

func TestShutdownIdempotent(t *testing.T) {
	s := startServer(t, t.TempDir(), catalog.NewStore())
	for range 2 {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply(context.Background(), RegisterType, &catalog.RegisterRequest{Node: "x"}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("apply after shutdown: %v", err)
	}
}

func TestRestartOnNewAddress(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, catalog.NewStore())
	registerN(t, s, 0, 5)
	before, _ := s.Peers()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	store := catalog.NewStore()
	s2 := startServer(t, dir, store) // a new ephemeral port
	want := s2.transport.LocalAddr()
	deadline := time.Now().Add(10 * time.Second)
	for {
		peers, err := s2.Peers()
		if err == nil && len(peers) == 1 && peers[0] == string(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peers = %v (%v), want [%s]; before the restart %v", peers, err, want, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And it still commits.
	registerN(t, s2, 5, 6)
}

func TestSnapshotPastThresholdAndOnShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("writes more than 16,384 entries")
	}
	dir := t.TempDir()
	var logWrites, logEntries atomic.Int64
	s := launch(t, catalog.NewStore(), func(c *Config) {
		c.DataDir, c.Bootstrap = dir, true
		c.Raft = LANRaftConfig(5) // loose timings: -race on a loaded machine
		c.Raft.SnapshotInterval = 200 * time.Millisecond
		c.ObserveLogWrite = func(entries int, _ time.Duration) {
			logWrites.Add(1)
			logEntries.Add(int64(entries))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	// Concurrent writers: Raft groups their entries into shared log writes.
	const writers, each = 16, 1100
	start := time.Now()
	var wg sync.WaitGroup
	errCh := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				req := &catalog.RegisterRequest{Node: fmt.Sprintf("n%d", w), Address: "10.0.0.1",
					Service: &catalog.Service{ID: fmt.Sprintf("s%d-%d", w, i), Service: "web", Port: i}}
				if _, err := s.Apply(ctx, RegisterType, req); err != nil {
					errCh <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errCh)
	if err := <-errCh; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d registrations from %d writers in %v", writers*each, writers, time.Since(start))
	// Every entry went through the observed log store, and with 16 writers
	// waiting on each fsync many shared one.
	w, e := logWrites.Load(), logEntries.Load()
	t.Logf("%d log writes for %d entries: %.1f entries per write", w, e, float64(e)/float64(max(w, 1)))
	if e < writers*each || w >= e {
		t.Errorf("log writes observed: %d writes, %d entries; want at least %d entries, fewer writes than entries", w, e, writers*each)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, _ := strconv.ParseUint(s.Stats()["last_snapshot_index"], 10, 64)
		if snap > 0 {
			t.Logf("snapshot taken at index %d", snap)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot after passing the threshold")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Shutdown snapshotted the rest: the restart restores rather than
	// replays, and everything is there.
	store2 := catalog.NewStore()
	s2 := startServer(t, dir, store2)
	if snap, _ := strconv.ParseUint(s2.Stats()["last_snapshot_index"], 10, 64); snap < uint64(writers*each) {
		t.Fatalf("last snapshot at %d after a graceful shutdown, want at least %d", snap, writers*each)
	}
	if _, got, _ := store2.ServiceNodes(nil, "web", nil); len(got) != writers*each {
		t.Fatalf("after restart: %d instances, want %d", len(got), writers*each)
	}
}
