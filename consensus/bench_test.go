package consensus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

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
