package consensus

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
)

// BenchmarkApply measures commits on one server with the log on disk
// (raft-wal, fsync per log write), from one writer and from many: Raft
// groups concurrent applies into one log write, so many writers must not
// cost one fsync each.
func BenchmarkApply(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := launch(b, catalog.NewStore(), func(c *Config) {
				c.DataDir, c.Bootstrap = b.TempDir(), true
				c.Raft = LANRaftConfig(1)
			})
			if err := s.WaitForLeader(context.Background()); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						req := &catalog.RegisterRequest{Node: "n", Address: "10.0.0.1",
							Service: &catalog.Service{ID: fmt.Sprintf("s%d", i), Service: "web", Port: 80}}
						if _, err := s.Apply(context.Background(), RegisterType, req); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// BenchmarkWriteTableHeap measures the memory the FSM's table of applied
// write identities holds at its largest steady size: two minutes of
// writes (WriteRetention) at 2,400 a second, the fastest registration
// rate measured, stamped 1/2400 s apart; then a minute more of writes,
// so the table both expires and grows as in service.
func BenchmarkWriteTableHeap(b *testing.B) {
	const rate = 2400
	window := int(WriteRetention/time.Second) * rate
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := newWriteTable()
		stamp := int64(1_780_000_000_000_000_000)
		for i := range window + 60*rate {
			stamp += int64(time.Second) / rate
			w.advance(stamp)
			w.add(catalog.NewWriteID(), uint64(i+1), nil)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(w.len()), "B/record")
		b.ReportMetric(float64(w.len()), "records")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		runtime.KeepAlive(w)
	}
}
