package jepsen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshd/meshd/scripts/internal/agentproc"
)

// Server is one server of the cluster under test, as the clients and the
// nemesis reach it: a process on loopback (Processes) or a container of
// make e2e.
type Server interface {
	Name() string
	// HTTP is the base URL of its HTTP API.
	HTTP() string
	// Kill stops it at once (SIGKILL); Start starts it again on its data
	// directory after Kill or StopWithin.
	Kill() error
	Start(ctx context.Context) error
	// Pause freezes it (SIGSTOP, or a frozen container); Resume thaws it.
	Pause() error
	Resume() error
	// StopWithin stops it gracefully; one still running after d is an
	// error.
	StopWithin(d time.Duration) error
	// Isolate cuts it off from the other servers, not from the clients;
	// Rejoin heals the cut. errors.ErrUnsupported where the network
	// cannot be cut (loopback).
	Isolate() error
	Rejoin() error
	// WaitAnswers waits until its HTTP API answers.
	WaitAnswers(ctx context.Context, timeout time.Duration) error
}

// Cluster is the servers under test.
type Cluster interface {
	Servers() []Server
	// Leader is the server the others name as leader, nil when none does.
	Leader() Server
}

// Processes is c, servers on loopback, as a Cluster.
func Processes(c *agentproc.Cluster) Cluster { return procCluster{c} }

type procCluster struct{ c *agentproc.Cluster }

func (p procCluster) Servers() []Server {
	var out []Server
	for _, s := range p.c.Servers {
		out = append(out, procServer{s})
	}
	return out
}

func (p procCluster) Leader() Server {
	if l := p.c.Leader(); l != nil {
		return procServer{l}
	}
	return nil
}

// procServer is a server process; processes on loopback share one
// network, which cannot be cut.
type procServer struct{ *agentproc.Agent }

func (s procServer) Name() string                     { return s.Agent.Name }
func (s procServer) HTTP() string                     { return s.Agent.HTTP }
func (s procServer) Kill() error                      { s.Agent.Kill(); return nil }
func (s procServer) Start(ctx context.Context) error  { return s.Agent.Restart(ctx) }
func (s procServer) StopWithin(d time.Duration) error { return s.Agent.StopWithin(d) }
func (s procServer) Isolate() error {
	return fmt.Errorf("isolate %s: servers on loopback: %w", s.Agent.Name, errors.ErrUnsupported)
}
func (s procServer) Rejoin() error { return s.Isolate() }

// waitLeader waits up to a minute for the servers of c to name a leader,
// whether or not a run's context has ended: a fault under way is always
// completed.
func waitLeader(c Cluster) (Server, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		if l := c.Leader(); l != nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("no leader for a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// others is the servers of c but s.
func others(c Cluster, s Server) []Server {
	return slices.DeleteFunc(c.Servers(), func(o Server) bool { return o.Name() == s.Name() })
}
