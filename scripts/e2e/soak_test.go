//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/scripts/internal/jepsen"
)

// The soak scenarios: the history checker on the compose datacenter for
// minutes. They run after the others (go test runs this file's tests
// last), so that minutes of faults and network cuts on the host do not
// run just before a scenario that times a single fault.

// composeServer is a server container as the history checker's nemesis
// acts on it: docker kills, freezes, stops and starts it, and cuts it off
// the datacenter's network (the control network, which the clients use,
// stays up).
type composeServer struct{ h host }

func (s composeServer) Name() string { return s.h.Node }
func (s composeServer) HTTP() string { return "http://" + s.h.CtlIP + ":8500" }

func (s composeServer) docker(args ...string) error {
	_, err := run(2*time.Minute, "docker", args...)
	return err
}

func (s composeServer) Kill() error                     { return s.docker("kill", "-s", "KILL", s.h.Container) }
func (s composeServer) Start(ctx context.Context) error { return s.docker("start", s.h.Container) }
func (s composeServer) Pause() error                    { return s.docker("pause", s.h.Container) }
func (s composeServer) Resume() error                   { return s.docker("unpause", s.h.Container) }
func (s composeServer) Isolate() error {
	return s.docker("network", "disconnect", s.h.LanNet, s.h.Container)
}
func (s composeServer) Rejoin() error {
	return s.docker("network", "connect", "--ip", s.h.LanIP, s.h.LanNet, s.h.Container)
}

// StopWithin stops the container gracefully (SIGTERM); docker kills one
// still running after d, which exits with 137, and that is an error.
func (s composeServer) StopWithin(d time.Duration) error {
	if err := s.docker("stop", "-t", strconv.Itoa(int(d.Seconds())), s.h.Container); err != nil {
		return err
	}
	out, err := run(30*time.Second, "docker", "inspect", "-f", "{{.State.ExitCode}}", s.h.Container)
	if err != nil {
		return err
	}
	if code := strings.TrimSpace(out); code == "137" {
		return fmt.Errorf("%s did not stop within %v of SIGTERM (exit code %s)", s.h.Container, d, code)
	}
	return nil
}

func (s composeServer) WaitAnswers(ctx context.Context, timeout time.Duration) error {
	_, err := eventually(timeout, 50*time.Millisecond, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return get(s.h, time.Second, "/v1/agent/self", nil)
	})
	return err
}

// composeCluster is a datacenter's server containers.
type composeCluster struct {
	c       *cluster
	servers []host
}

func (cc composeCluster) Servers() []jepsen.Server {
	var out []jepsen.Server
	for _, h := range cc.servers {
		out = append(out, composeServer{h})
	}
	return out
}

// Leader is the server the first server that answers names.
func (cc composeCluster) Leader() jepsen.Server {
	for _, s := range cc.servers {
		addr, err := leader(s)
		if err != nil || addr == "" {
			continue
		}
		if h, ok := cc.c.byRaftAddr(addr); ok {
			return composeServer{h}
		}
	}
	return nil
}

// checkedRun runs the history checker on compose.yml's datacenter: 6
// clients on 4 registers, each operation on a random server over the
// control network, while the nemesis injects faults; the consistent reads
// must be linearizable with the writes, and the default reads too but for
// those a deposed leader answered (each listed in the test's log).
func checkedRun(t *testing.T, fig func(figure, format string, args ...any), d time.Duration, nem jepsen.Nemesis) {
	c := startCluster(t, "compose.yml", oneDC())
	waitReady(t, c, "dc1")
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Minute)
	defer cancel()
	rep, err := jepsen.RunOn(ctx, composeCluster{c, c.servers("dc1")}, jepsen.Spec{
		Dir: out, Duration: d,
		Workload:   jepsen.Workload{Clients: 6, Keys: 4, OpTimeout: 5 * time.Second, Pace: 5 * time.Millisecond},
		Nemesis:    nem,
		CheckLimit: 2 * time.Minute,
		Logf:       t.Logf,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[jepsen.Fault]int{}
	for _, f := range rep.Faults {
		kinds[f.Fault]++
	}
	var faults []string
	for _, f := range nem.Faults {
		faults = append(faults, fmt.Sprintf("%d × %s", kinds[f], f))
	}
	fig("operations", "%d in %s (%d writes, %d of unknown outcome; %d consistent and %d default reads)",
		rep.Ops, d, rep.Writes, rep.UnknownWrites, rep.ConsistentReads, rep.Reads)
	fig("faults", "%d: %s", len(rep.Faults), strings.Join(faults, ", "))
	fig("every server caught up", "%s after the run", ms(rep.CaughtUp))
	for _, res := range rep.Results {
		v := map[bool]string{true: "linearizable", false: "NOT linearizable"}[res.Passed()]
		if len(res.Deposed) > 0 {
			v += fmt.Sprintf(" without the %d reads a deposed leader answered", len(res.Deposed))
			for _, op := range res.Deposed {
				t.Logf("deposed leader's read: client %d k%d %q at %v–%v, answered by %s in term %d",
					op.Client, op.Key, op.Value, time.Duration(op.Call), time.Duration(op.Return), op.ServedBy, op.Term)
			}
		}
		fig(res.Mode.String()+" reads", "%s (%d operations checked in %s)", v, res.Ops, ms(res.Took))
	}
	for _, k := range nem.Faults {
		if kinds[k] == 0 {
			t.Errorf("no %s injected in %s", k, d)
		}
	}
	if !rep.Ok() {
		t.Errorf("histories not linearizable: %s (visualizations in %s)", rep, filepath.Join(out, "history-*.html"))
	}
}

// TestCheckedHistory: the long run of the history checker, on containers
// — the leader killed (SIGKILL) and started again on its data, the
// leader frozen for a few seconds, a follower stopped gracefully and
// started again — for three minutes.
func TestCheckedHistory(t *testing.T) {
	fig := scenario(t, "8. checked history under kills, freezes and restarts")
	checkedRun(t, fig, 3*time.Minute, jepsen.Nemesis{
		Faults: []jepsen.Fault{jepsen.PauseLeader, jepsen.KillLeader, jepsen.RestartFollower},
		Quiet:  3 * time.Second, Down: 1500 * time.Millisecond,
	})
}

// TestCheckedHistoryLeaderPartition: the history checker while the leader
// is cut off from the other servers, again and again, for two to four
// seconds each time: long enough for the others to elect a new leader
// while clients still reach the old one.
func TestCheckedHistoryLeaderPartition(t *testing.T) {
	fig := scenario(t, "9. checked history under leader partitions")
	checkedRun(t, fig, 90*time.Second, jepsen.Nemesis{
		Faults: []jepsen.Fault{jepsen.PartitionLeader},
		Quiet:  3 * time.Second, Down: 2 * time.Second,
	})
}
