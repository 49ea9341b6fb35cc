package local

import (
	"context"
	"time"

	"github.com/meshd/meshd/internal/clock"
)

// reapInterval is how often the agent looks for services to reap. Consul
// looks every 30 s; a second costs nothing and keeps the reap close to the
// deregister_critical_service_after that was asked for.
const reapInterval = time.Second

// reapLoop deregisters this agent's services whose check has been critical
// for longer than its deregister_critical_service_after. The agent does it
// for its own services (the leader does it for nodes without a live
// agent), so the sync never puts back what the leader took away.
func (r *Registry) reapLoop(ctx context.Context) {
	t := clock.NewTicker(r.state.cfg.Clock, reapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Under the lock, so that a registration cannot replace a
		// service between the look and the removal.
		r.mu.Lock()
		for _, id := range r.state.Reapable() {
			if _, ok, err := r.removeService(id); err != nil {
				r.logger.Warn("reap service", "service_id", id, "error", err)
			} else if ok {
				r.logger.Info("deregistered a service critical for longer than its deregister_critical_service_after", "service_id", id)
			}
		}
		r.mu.Unlock()
	}
}
