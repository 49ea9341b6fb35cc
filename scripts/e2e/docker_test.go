//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// project is the compose project name of every e2e cluster, so that a
// leftover cluster (a demo left running, a test killed halfway) is found and
// removed before the next one starts.
const project = "meshd-e2e"

// composeCmd is how this machine runs compose: "docker compose" (the plugin)
// or "docker-compose" (the standalone tool), found by TestMain.
var composeCmd []string

// dir is this package's directory, where the compose files are.
var dir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}()

func TestMain(m *testing.M) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: no Docker engine answers `docker info`:", err)
		os.Exit(1)
	}
	switch {
	case exec.Command("docker", "compose", "version").Run() == nil:
		composeCmd = []string{"docker", "compose"}
	case exec.Command("docker-compose", "version").Run() == nil:
		composeCmd = []string{"docker-compose"}
	default:
		fmt.Fprintln(os.Stderr, "e2e: neither `docker compose` nor `docker-compose` is installed")
		os.Exit(1)
	}
	if os.Getenv("E2E_SKIP_BUILD") == "" {
		cmd := exec.Command(filepath.Join(dir, "build-image.sh"))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building the image:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if err := results.write(filepath.Join(dir, "RESULTS.md")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: writing RESULTS.md:", err)
		code = 1
	}
	os.Exit(code)
}

// run runs a command with a deadline and returns its combined output.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), err
}

// host is one container of a cluster, as its compose file defines it.
type host struct {
	Container string // docker's name for it
	Node      string // meshd's node name
	DC        string
	Server    bool
	CtlIP     string // on the control network, which faults never cut
	LanIP     string // on the datacenter's network: gossip, RPC and Raft
	LanNet    string
	WanIP     string // servers of the two-datacenter cluster
}

func (h host) String() string { return h.Node }

// cluster is one compose file's set of hosts, brought up for one test and
// removed when it ends.
type cluster struct {
	t     *testing.T
	file  string
	hosts []host
}

const (
	lanNet  = "meshd-e2e-lan"
	dc2Net  = "meshd-e2e-dc2"
	wanNet  = "meshd-e2e-wan"
	webPort = 8080
)

// oneDC is compose.yml.
func oneDC() []host {
	var hs []host
	for i := 1; i <= 3; i++ {
		hs = append(hs, host{Container: fmt.Sprintf("meshd-server%d", i), Node: fmt.Sprintf("server%d", i), DC: "dc1", Server: true,
			CtlIP: fmt.Sprintf("10.77.0.1%d", i), LanIP: fmt.Sprintf("10.77.1.1%d", i), LanNet: lanNet})
	}
	for i := 1; i <= 3; i++ {
		hs = append(hs, host{Container: fmt.Sprintf("meshd-client%d", i), Node: fmt.Sprintf("client%d", i), DC: "dc1",
			CtlIP: fmt.Sprintf("10.77.0.2%d", i), LanIP: fmt.Sprintf("10.77.1.2%d", i), LanNet: lanNet})
	}
	return hs
}

// twoDC is compose-wan.yml: dc1's hosts on 10.77.1.0/24, dc2's on
// 10.77.2.0/24, and every server on the WAN network 10.77.100.0/24.
func twoDC() []host {
	var hs []host
	for d, dc := range []string{"dc1", "dc2"} {
		net := lanNet
		if dc == "dc2" {
			net = dc2Net
		}
		for i := 1; i <= 3; i++ {
			hs = append(hs, host{Container: fmt.Sprintf("meshd-%s-server%d", dc, i), Node: fmt.Sprintf("%s-server%d", dc, i), DC: dc, Server: true,
				CtlIP: fmt.Sprintf("10.77.0.%d%d", 1+2*d, i), LanIP: fmt.Sprintf("10.77.%d.1%d", d+1, i), LanNet: net,
				WanIP: fmt.Sprintf("10.77.100.%d%d", 1+2*d, i)})
		}
		hs = append(hs, host{Container: fmt.Sprintf("meshd-%s-client1", dc), Node: fmt.Sprintf("%s-client1", dc), DC: dc,
			CtlIP: fmt.Sprintf("10.77.0.%d1", 2+2*d), LanIP: fmt.Sprintf("10.77.%d.21", d+1), LanNet: net})
	}
	return hs
}

// startCluster brings up a compose file's cluster from scratch and removes
// it when the test ends, after printing every container's last log lines
// if the test failed.
func startCluster(t *testing.T, file string, hosts []host) *cluster {
	t.Helper()
	c := &cluster{t: t, file: filepath.Join(dir, file), hosts: hosts}
	c.down()
	if _, err := c.compose(3*time.Minute, "up", "-d"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range c.hosts {
				out, _ := run(30*time.Second, "docker", "logs", "--tail", "40", h.Container)
				t.Logf("---- %s (last log lines)\n%s", h.Container, out)
			}
		}
		c.down()
	})
	return c
}

func (c *cluster) compose(timeout time.Duration, args ...string) (string, error) {
	full := append(append(append([]string{}, composeCmd[1:]...), "-p", project, "-f", c.file), args...)
	return run(timeout, composeCmd[0], full...)
}

// down removes any cluster of the project, whichever compose file made it.
func (c *cluster) down() {
	for _, f := range []string{"compose.yml", "compose-wan.yml"} {
		full := append(append([]string{}, composeCmd[1:]...), "-p", project, "-f", filepath.Join(dir, f), "down", "-v", "--remove-orphans", "-t", "5")
		if out, err := run(3*time.Minute, composeCmd[0], full...); err != nil {
			c.t.Logf("compose down: %v\n%s", err, out)
		}
	}
}

func (c *cluster) docker(args ...string) {
	c.t.Helper()
	if _, err := run(2*time.Minute, "docker", args...); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) servers(dc string) []host {
	var out []host
	for _, h := range c.hosts {
		if h.Server && h.DC == dc {
			out = append(out, h)
		}
	}
	return out
}

func (c *cluster) clients(dc string) []host {
	var out []host
	for _, h := range c.hosts {
		if !h.Server && h.DC == dc {
			out = append(out, h)
		}
	}
	return out
}

// byRaftAddr finds the server whose Raft address ("10.77.1.11:8300") addr is.
func (c *cluster) byRaftAddr(addr string) (host, bool) {
	for _, h := range c.hosts {
		if h.Server && h.LanIP+":8300" == addr {
			return h, true
		}
	}
	return host{}, false
}

// disconnect cuts h off a network; connect puts it back with its address.
func (c *cluster) disconnect(network string, h host) {
	c.docker("network", "disconnect", network, h.Container)
}

func (c *cluster) connect(network string, h host, ip string) {
	c.docker("network", "connect", "--ip", ip, network, h.Container)
}

// eventually polls cond every interval until it returns nil or timeout
// passes, and returns how long it took, or the last error.
func eventually(timeout, interval time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}
