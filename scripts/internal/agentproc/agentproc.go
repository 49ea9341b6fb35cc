// Package agentproc runs the real meshd binary for the benchmark scripts:
// a dev agent on free loopback ports, HTTP helpers to load it, and its CPU
// use from /proc. Traffic goes to 127.0.0.1 only.
package agentproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Agent is a running `meshd agent -dev`.
type Agent struct {
	cmd *exec.Cmd
	// Name is the node name, for cluster members.
	Name string
	// HTTP is the API base URL; DNSPort the DNS port on 127.0.0.1.
	HTTP    string
	DNSPort int
	// Client is an HTTP client sized for Workers concurrent requests.
	Client *http.Client
	// ServerAddr is a cluster server's RPC and Raft address
	// (127.0.0.1:port), as /v1/status/leader names it; "" for others.
	ServerAddr string
	// stderr receives the process's errors, across restarts.
	stderr io.Writer
}

// Start runs bin as a dev agent with its HTTP, DNS and server ports on free
// loopback ports plus extra arguments, and waits until it has a leader.
// ctx bounds the agent's life: it is killed when ctx ends.
func Start(ctx context.Context, bin string, workers int, extra ...string) (*Agent, error) {
	return StartWrapped(ctx, nil, bin, workers, extra...)
}

// StartWrapped is Start with the agent run under a wrapper command, such
// as ["taskset", "-c", "1"] to pin it to a CPU; nil runs it directly.
func StartWrapped(ctx context.Context, wrap []string, bin string, workers int, extra ...string) (*Agent, error) {
	var ports [3]int
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	args := append([]string{"agent", "-dev", "-log-level", "warn",
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[1]), "-server-port", strconv.Itoa(ports[2])},
		extra...)
	a, err := Launch(ctx, append(append(slices.Clone(wrap), bin), args...), workers, ports[0], ports[1])
	if err != nil {
		return nil, err
	}
	if err := a.WaitUp(30 * time.Second); err != nil {
		a.Stop()
		return nil, err
	}
	return a, nil
}

// Launch runs argv (the binary and its arguments) as an agent whose HTTP
// API and DNS are on httpPort and dnsPort of 127.0.0.1, without waiting
// for it: servers that bootstrap together are up only once all run. ctx
// bounds the agent's life.
func Launch(ctx context.Context, argv []string, workers, httpPort, dnsPort int) (*Agent, error) {
	return LaunchEnv(ctx, argv, nil, workers, httpPort, dnsPort)
}

// LaunchEnv is Launch with extra environment variables (such as
// GOGC=50) on top of this process's.
func LaunchEnv(ctx context.Context, argv, env []string, workers, httpPort, dnsPort int) (*Agent, error) {
	return launchTo(ctx, argv, env, os.Stderr, workers, httpPort, dnsPort)
}

// launchTo is LaunchEnv with the process's errors going to stderr.
func launchTo(ctx context.Context, argv, env []string, stderr io.Writer, workers, httpPort, dnsPort int) (*Agent, error) {
	var full []string // nil: this process's environment
	if len(env) > 0 {
		full = append(os.Environ(), env...)
	}
	cmd, err := startCmd(ctx, argv, full, stderr)
	if err != nil {
		return nil, err
	}
	return &Agent{
		cmd:     cmd,
		stderr:  stderr,
		HTTP:    fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		DNSPort: dnsPort,
		Client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}},
	}, nil
}

// startCmd starts argv with environment env (nil: this process's), its
// output discarded and its errors to stderr.
func startCmd(ctx context.Context, argv, env []string, stderr io.Writer) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Env = io.Discard, stderr, env
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	return cmd, nil
}

// Pid is the agent's process ID.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Pause stops the process with SIGSTOP: it holds its sockets and state
// but runs nothing, as a process stalled by the host would.
func (a *Agent) Pause() error { return a.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (a *Agent) Resume() error { return a.cmd.Process.Signal(syscall.SIGCONT) }

// Stop interrupts the agent and waits for it to exit, a minute at most
// (StopWithin).
func (a *Agent) Stop() { _ = a.StopWithin(time.Minute) }

// StopWithin interrupts the agent and waits up to d for it to exit; an
// agent that has not exited by then is killed (SIGQUIT first, so a Go
// process prints its goroutines to its log), and the error says so.
func (a *Agent) StopWithin(d time.Duration) error {
	_ = a.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() {
		_ = a.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(d):
	}
	_ = a.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
	}
	return fmt.Errorf("%s did not exit within %v of SIGINT", a.Name, d)
}

// FreePort is a port free for TCP and UDP on 127.0.0.1 now, below the
// kernel's ephemeral range (from 32768 on Linux) so that no outgoing
// connection takes it before the agent binds it, and never one handed out
// before by this process.
func FreePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	if nextPort == 0 {
		nextPort = portsLow + rand.N(portsHigh-portsLow)
	}
	for range portsHigh - portsLow {
		p := nextPort
		nextPort++
		if nextPort == portsHigh {
			nextPort = portsLow
		}
		if handedOut[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		handedOut[p] = true
		return p, nil
	}
	return 0, errors.New("no free port below the ephemeral range")
}

const portsLow, portsHigh = 10000, 32000

var (
	portsMu   sync.Mutex
	nextPort  int
	handedOut = map[int]bool{}
)

// WaitUp waits, up to timeout, until the agent's API names a leader.
func (a *Agent) WaitUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := a.Client.Get(a.HTTP + "/v1/status/leader")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(bytes.Trim(b, "\"\n")) > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not up at %s: %v", a.HTTP, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Put sends a PUT to the agent's API path and wants a 200.
func (a *Agent) Put(path, body string) error {
	req, err := http.NewRequest("PUT", a.HTTP+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("PUT %s: %d %s", path, resp.StatusCode, b)
	}
	return nil
}

// Get fetches the agent's API path and wants a 200.
func (a *Agent) Get(path string) ([]byte, error) {
	return a.GetTimeout(path, a.Client.Timeout)
}

// GetTimeout is Get with its own time limit.
func (a *Agent) GetTimeout(path string, timeout time.Duration) ([]byte, error) {
	c := *a.Client
	c.Timeout = timeout
	resp, err := c.Get(a.HTTP + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b, nil
}

// Parallel runs f(0..n-1) on workers goroutines and returns the first
// error; after an error no new call starts.
func Parallel(n, workers int, f func(i int) error) error {
	var (
		next    atomic.Int64
		failed  atomic.Bool
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errOnce.Do(func() { first = err })
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return first
}

// CPUSeconds reads a process's user+system CPU time from /proc.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, fmt.Errorf("unexpected /proc stat %q", b)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat %q", b)
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	const ticks = 100 // USER_HZ on Linux
	return (utime + stime) / ticks, nil
}
