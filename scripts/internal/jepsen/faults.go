package jepsen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/meshd/meshd/scripts/internal/agentproc"
)

// Fault is one kind of fault the nemesis injects.
type Fault int

const (
	// KillLeader kills the leader with SIGKILL and restarts it on its
	// data directory.
	KillLeader Fault = iota
	// PauseLeader stops the leader with SIGSTOP for a few seconds, then
	// continues it.
	PauseLeader
	// RestartFollower stops a follower gracefully (SIGINT) and starts it
	// again.
	RestartFollower
	// PartitionLeader cuts the leader off from the other servers for a
	// few seconds, its clients still reaching it, then heals the cut
	// (containers only: Server.Isolate).
	PartitionLeader
)

func (f Fault) String() string {
	switch f {
	case KillLeader:
		return "kill leader"
	case PauseLeader:
		return "pause leader"
	case RestartFollower:
		return "restart follower"
	case PartitionLeader:
		return "partition leader"
	}
	return fmt.Sprintf("fault-%d", int(f))
}

// Injected is a fault as it happened.
type Injected struct {
	Fault  Fault
	Server string
	// At and Healed are times since the history started.
	At, Healed time.Duration
}

// Nemesis injects faults into a cluster of real servers.
type Nemesis struct {
	Cluster Cluster
	// Faults are injected in turn, each once every len(Faults) rounds.
	Faults []Fault
	// Quiet is the time between a fault healed and the next.
	Quiet time.Duration
	// Down is how long a killed or stopped server stays down, and a
	// paused leader paused: a random time in [Down, 2·Down).
	Down time.Duration
	// Logf, when set, hears of each fault.
	Logf func(format string, args ...any)
}

// Run injects faults until ctx ends, each healed before the next (and the
// last one healed before it returns), and returns what it did.
func (n *Nemesis) Run(ctx context.Context, h *History) ([]Injected, error) {
	var done []Injected
	for i := 0; ; i++ {
		if !agentproc.SleepCtx(ctx, n.Quiet) {
			return done, nil
		}
		f := n.Faults[i%len(n.Faults)]
		in, err := n.inject(ctx, f, h)
		if err != nil {
			return done, fmt.Errorf("%s: %w", f, err)
		}
		done = append(done, in)
		if n.Logf != nil {
			n.Logf("%v  %s %s (healed at %v)", in.At.Round(time.Millisecond), f, in.Server, in.Healed.Round(time.Millisecond))
		}
	}
}

func (n *Nemesis) inject(ctx context.Context, f Fault, h *History) (Injected, error) {
	leader, err := waitLeader(n.Cluster)
	if err != nil {
		return Injected{}, err
	}
	target := leader
	if f == RestartFollower {
		target = others(n.Cluster, leader)[0]
	}
	in := Injected{Fault: f, Server: target.Name(), At: time.Duration(h.Now())}
	down := n.Down + rand.N(n.Down)
	// Heal even when ctx ends: a run leaves every server up.
	heal := context.WithoutCancel(ctx)
	switch f {
	case KillLeader:
		if err := target.Kill(); err != nil {
			return in, err
		}
		agentproc.SleepCtx(ctx, down)
		if err := target.Start(heal); err != nil {
			return in, err
		}
	case PauseLeader:
		if err := target.Pause(); err != nil {
			return in, err
		}
		agentproc.SleepCtx(ctx, down)
		if err := target.Resume(); err != nil {
			return in, err
		}
	case RestartFollower:
		// A graceful stop must end: a server that hangs in its shutdown
		// fails the run.
		if err := target.StopWithin(30 * time.Second); err != nil {
			return in, err
		}
		agentproc.SleepCtx(ctx, down/2)
		if err := target.Start(heal); err != nil {
			return in, err
		}
	case PartitionLeader:
		if err := target.Isolate(); err != nil {
			return in, err
		}
		agentproc.SleepCtx(ctx, down)
		if err := target.Rejoin(); err != nil {
			return in, err
		}
	}
	if err := target.WaitAnswers(heal, 60*time.Second); err != nil {
		return in, err
	}
	in.Healed = time.Duration(h.Now())
	return in, nil
}
