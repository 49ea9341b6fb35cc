package server

import (
	"context"
	"sync"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
)

// autopilotState is the leader's latest look at its servers, for
// operator/autopilot/health. It is safe for concurrent use.
type autopilotState struct {
	mu     sync.Mutex // guards health
	health *rpc.AutopilotHealth
}

func (s *autopilotState) set(h *rpc.AutopilotHealth) {
	s.mu.Lock()
	s.health = h
	s.mu.Unlock()
}

// get returns the latest look, nil when none was taken in this term.
func (s *autopilotState) get() *rpc.AutopilotHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

// autopilotLoop looks at the servers every autopilotInterval while this
// server leads (autopilotTick), in a loop of its own: a look waits up to
// 2 s for a hung server, which must not hold up the reconcile loop.
func (l *Duties) autopilotLoop(ctx context.Context) {
	t := clock.NewTicker(l.clock, autopilotInterval)
	defer t.Stop()
	stable := map[string]time.Time{} // servers healthy since
	for {
		l.autopilotTick(ctx, stable)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// autopilotTick looks at every server of the Raft configuration, as
// Consul's autopilot does, and records what it saw: a server is healthy
// when gossip has it alive and it answers Status.RaftStats in its leader's
// term, within autopilot's max_trailing_logs of the leader's log and
// last_contact_threshold of hearing from it. A non-voter healthy for
// server_stabilization_time gets its vote. stable holds when each server
// was first seen healthy in this leadership term; one unhealthy look
// starts its clock over, so a server that joins and dies before it has
// proved itself never takes a vote (and the quorum) with it. The
// thresholds are the stored settings' (autopilotConfig); while none are
// stored, the tick first tries to store the config file's.
func (l *Duties) autopilotTick(ctx context.Context, stable map[string]time.Time) {
	ap, stored := l.autopilotConfig()
	if !stored {
		l.storeFileAutopilotConfig(ctx, ap)
	}
	conf, _, err := l.cfg.Raft.Configuration()
	if err != nil {
		return
	}
	members := l.dcServers()
	stats := l.serverStats(ctx, conf, members)
	term, leaderIndex := l.cfg.Raft.Term(), l.cfg.Raft.LastIndex()
	now := l.clock.Now()
	out := &rpc.AutopilotHealth{Healthy: true}
	seen := map[string]bool{}
	voters, healthyVoters := 0, 0
	for i, c := range conf {
		seen[c.ID] = true
		m, known := members[c.ID]
		if !known {
			m.Status = "none"
		}
		h := rpc.ServerHealth{ID: c.ID, Name: m.Name, Address: c.Address, SerfStatus: string(m.Status), Version: m.Build,
			Leader: c.ID == l.cfg.NodeID, Voter: c.Voter}
		if st := stats[i]; st != nil {
			h.LastContact, h.LastTerm, h.LastIndex = st.LastContact, st.Term, st.LastIndex
			h.Healthy = m.Status == gossip.StatusAlive && st.AppliedIndex > 0 &&
				st.LastIndex+ap.MaxTrailingLogs >= leaderIndex &&
				st.LastContact <= ap.LastContactThreshold && (st.Term == 0 || st.Term == term)
		}
		if !h.Healthy {
			delete(stable, c.ID)
			out.Healthy = false
		} else if _, ok := stable[c.ID]; !ok {
			stable[c.ID] = now
		}
		h.StableSince = stable[c.ID]
		if c.Voter {
			voters++
			if h.Healthy {
				healthyVoters++
			}
		}
		out.Servers = append(out.Servers, h)
		if !c.Voter && h.Healthy && now.Sub(h.StableSince) >= ap.ServerStabilizationTime {
			l.logger.Info("promoting a server healthy for the stabilization time to voter", "id", c.ID,
				"name", m.Name, "stable_for", now.Sub(h.StableSince).Round(time.Millisecond))
			if err := l.cfg.Raft.Promote(c.ID, c.Address); err != nil {
				l.logger.Warn("promote server", "id", c.ID, "error", err)
			}
		}
	}
	for id := range stable {
		if !seen[id] {
			delete(stable, id)
		}
	}
	out.FailureTolerance = max(healthyVoters-(voters/2+1), 0)
	l.autopilot.set(out)
}

// serverStats asks the servers of conf that gossip has alive for their
// Raft stats, all at once (2 s each at most), and answers this server's
// own: nil for those not asked or not answering, which are unhealthy
// anyway. A dead server costs the look no time.
func (l *Duties) serverStats(ctx context.Context, conf []consensus.ServerInfo, members map[string]gossip.Server) []*rpc.RaftStats {
	stats := make([]*rpc.RaftStats, len(conf))
	var wg sync.WaitGroup
	for i, c := range conf {
		switch {
		case c.ID == l.cfg.NodeID:
			stats[i] = Stats(l.cfg.Raft)
		case members[c.ID].Status == gossip.StatusAlive:
			wg.Go(func() {
				st := new(rpc.RaftStats)
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if err := l.cfg.Pool.Call(cctx, c.Address, RaftStats.Name(), &rpc.Empty{}, st); err == nil {
					stats[i] = st
				}
			})
		}
	}
	wg.Wait()
	return stats
}

// autopilotConfig is the configuration autopilot runs on: the stored one
// (stored true), else this server's config file's.
func (l *Duties) autopilotConfig() (c catalog.AutopilotConfig, stored bool) {
	if _, sc, err := l.cfg.Store.AutopilotConfig(nil); err == nil && sc != nil {
		return *sc, true
	}
	return l.cfg.AutopilotFile, false
}

// FileAutopilotConfig is the autopilot block of the config files as the
// configuration a leader stores.
func FileAutopilotConfig(c config.AutopilotConfig) catalog.AutopilotConfig {
	return catalog.AutopilotConfig{
		CleanupDeadServers:      c.CleanupDeadServers,
		LastContactThreshold:    c.LastContactThreshold,
		MaxTrailingLogs:         uint64(c.MaxTrailingLogs),
		ServerStabilizationTime: c.ServerStabilizationTime,
		MinQuorum:               uint(c.MinQuorum),
	}
}

// storeFileAutopilotConfig is what a leader does, as Consul's, while no
// autopilot configuration is stored: store its config file's, file, once
// every server reads it. A check-and-set on "none stored" leaves one an
// operator stored meanwhile alone.
func (l *Duties) storeFileAutopilotConfig(ctx context.Context, file catalog.AutopilotConfig) {
	if !l.ServersRead(consensus.AutopilotVersion) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req := &catalog.AutopilotConfigRequest{Config: file, CAS: true}
	stored, err := CASResult(AutopilotSetConfiguration.Call(ctx, l.cfg.Servers, req))
	if err != nil {
		if ctx.Err() == nil { // not a leadership that ended, or a write without a quorum: tried again next tick
			l.logger.Warn("store the config file's autopilot configuration", "error", err)
		}
		return
	}
	if !stored { // one was stored meanwhile
		return
	}
	l.logger.Info("stored the config file's autopilot configuration: from now on it is changed through operator/autopilot/configuration")
}
