package local

import (
	"context"
	"log/slog"
	"sync"
)

// stateSaver writes check status changes to the data dir from one
// goroutine, keeping only the latest state of each check: status changes
// never wait on the disk, a burst (thousands of TTLs expiring together)
// costs one write per check, and a save and a removal of the same check
// land in the order they were asked for.
type stateSaver struct {
	p      *persister
	logger *slog.Logger
	kickCh chan struct{}

	mu      sync.Mutex             // guards pending
	pending map[string]*checkState // nil: remove the saved state
}

func newStateSaver(p *persister, logger *slog.Logger) *stateSaver {
	return &stateSaver{p: p, logger: logger, kickCh: make(chan struct{}, 1), pending: map[string]*checkState{}}
}

// save queues a check's new state.
func (s *stateSaver) save(id, status, output string) {
	s.put(id, &checkState{CheckID: id, Status: status, Output: output})
}

// forget queues the removal of a check's saved state.
func (s *stateSaver) forget(id string) { s.put(id, nil) }

func (s *stateSaver) put(id string, st *checkState) {
	if s.p == nil {
		return
	}
	s.mu.Lock()
	s.pending[id] = st
	s.mu.Unlock()
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
}

// run writes queued states until ctx ends, then writes what is left.
func (s *stateSaver) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return
		case <-s.kickCh:
			s.flush()
		}
	}
}

func (s *stateSaver) flush() {
	s.mu.Lock()
	batch := s.pending
	s.pending = map[string]*checkState{}
	s.mu.Unlock()
	for id, st := range batch {
		var err error
		if st == nil {
			err = s.p.removeCheckState(id)
		} else {
			err = s.p.saveCheckState(id, st.Status, st.Output)
		}
		if err != nil {
			s.logger.Warn("save check state", "check", id, "error", err)
		}
	}
}
