package checks

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// writeScript writes a /bin/sh script into a temporary directory.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScriptResults(t *testing.T) {
	for _, tc := range []struct {
		name       string
		script     string
		args       func(path string) []string
		maxOutput  int
		wantStatus string
		wantOutput string
		wantPrefix bool // wantOutput is a prefix only
	}{
		{name: "exit 0", script: "echo all good", wantStatus: StatusPassing, wantOutput: "all good\n"},
		{name: "exit 1", script: "echo slow; exit 1", wantStatus: StatusWarning, wantOutput: "slow\n"},
		{name: "exit 2", script: "echo broken; exit 2", wantStatus: StatusCritical, wantOutput: "broken\n"},
		{name: "killed by a signal", script: "kill -9 $$", wantStatus: StatusCritical, wantOutput: "signal: killed"},
		{name: "stdout and stderr combined", script: "echo out; echo err >&2; echo out2",
			wantStatus: StatusPassing, wantOutput: "out\nerr\nout2\n"},
		{name: "executable run directly", script: "echo direct", args: func(p string) []string { return []string{p} },
			wantStatus: StatusPassing, wantOutput: "direct\n"},
		{name: "argv without a shell", script: `printf '%s|' "$@"`,
			args:       func(p string) []string { return []string{"/bin/sh", p, "a b", "$HOME", ";echo x"} },
			wantStatus: StatusPassing, wantOutput: "a b|$HOME|;echo x|"},
		{name: "huge output bounded", script: "head -c 50000000 /dev/zero | tr '\\0' x; echo done >&2", maxOutput: 1000,
			wantStatus: StatusPassing, wantOutput: strings.Repeat("x", 1000)},
		{name: "not found", args: func(string) []string { return []string{"/nonexistent/check"} },
			wantStatus: StatusCritical, wantOutput: "fork/exec /nonexistent/check: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeScript(t, tc.script)
			args := []string{"/bin/sh", path}
			if tc.args != nil {
				args = tc.args(path)
			}
			h := newHarness(t, nil)
			h.add(Definition{ID: "s", Args: args, Interval: time.Minute, OutputMaxSize: tc.maxOutput,
				FailuresBeforeCritical: 1}, StatusWarning)
			start := time.Now()
			h.step()
			t.Logf("run took %s", time.Since(start))
			u, _ := h.rec.lastOf("s")
			if u.status != tc.wantStatus || u.output != tc.wantOutput {
				t.Fatalf("reported %s: %q, want %s: %q", u.status, u.output, tc.wantStatus, tc.wantOutput)
			}
		})
	}
}

// readPIDs reads the process IDs a script appended to a file.
func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// hangingScript starts a child that would sleep for minutes, records its
// own and the child's PID in pidFile, and waits for the child.
func hangingScript(t *testing.T, pidFile string) string {
	return writeScript(t, "sleep 300 &\necho $$ $! >> "+pidFile+"\necho started\nwait")
}

// TestScriptTimeout: a script that hangs is killed at the timeout with
// its child, and the check turns critical after the immediate retry.
func TestScriptTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	script := hangingScript(t, pidFile)
	h := newHarness(t, nil)
	const timeout = 300 * time.Millisecond
	h.add(Definition{ID: "s", Args: []string{"/bin/sh", script}, Interval: time.Minute, Timeout: timeout}, StatusPassing)
	start := time.Now()
	h.step()
	took := time.Since(start)
	t.Logf("run + retry of a hanging script took %s (timeout %s)", took, timeout)
	u := h.rec.last()
	if u.status != StatusCritical || u.output != "Timed out (300ms) running check; output so far: started\n" {
		t.Fatalf("reported %s: %q, want critical, timed out", u.status, u.output)
	}
	if took < 2*timeout || took > 15*time.Second {
		t.Fatalf("critical after %s, want about two timeouts of %s", took, timeout)
	}
	pids := readPIDs(t, pidFile)
	if len(pids) != 4 {
		t.Fatalf("pids %v, want a script and its child for each of two runs", pids)
	}
	for _, pid := range pids {
		testkit.Eventually(t, waitTimeout, "process "+strconv.Itoa(pid)+" to be gone", func() bool { return processGone(pid) })
	}
}

// TestScriptLeavesChild: a script that exits but leaves a child holding
// its output is reported after a short grace period, and the child is
// killed.
func TestScriptLeavesChild(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	script := writeScript(t, "sleep 300 &\necho $! >> "+pidFile+"\necho bye")
	h := newHarness(t, nil)
	h.add(Definition{ID: "s", Args: []string{"/bin/sh", script}, Interval: time.Minute, Timeout: time.Minute}, "")
	start := time.Now()
	h.step()
	t.Logf("run took %s (grace %s)", time.Since(start), scriptWaitDelay)
	if u := h.rec.last(); u.status != StatusPassing || u.output != "bye\n" {
		t.Fatalf("reported %s: %q, want passing: bye", u.status, u.output)
	}
	for _, pid := range readPIDs(t, pidFile) {
		testkit.Eventually(t, waitTimeout, "the child to be gone", func() bool { return processGone(pid) })
	}
}
