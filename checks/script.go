package checks

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// scriptWaitDelay is how long a script's output pipe may stay open after
// the script exited (a child it left running holds it) before the run
// ends anyway and the script's process group is killed.
const scriptWaitDelay = time.Second

// probeScript runs the check's argv, without a shell, in a process group
// of its own: exit 0 is passing, 1 warning, anything else critical. The
// output is stdout and stderr combined, of which only the first
// OutputMaxSize bytes are kept; the rest is read and discarded. At the
// timeout, or when the check stops, the whole process group is killed,
// so a child the script started does not outlive it.
func (c *check) probeScript(ctx context.Context) (status, output string) {
	cmd := exec.CommandContext(ctx, c.def.Args[0], c.def.Args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = scriptWaitDelay
	out := &boundedBuffer{max: c.def.OutputMaxSize}
	cmd.Stdout = out // one writer for both: exec shares one pipe
	cmd.Stderr = out

	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) || ctx.Err() != nil {
		// Something of the group outlived the script, or the run was cut
		// short: make sure nothing of it is left. The group is still
		// there (its members hold its ID), so the ID cannot be reused.
		_ = killGroup(cmd)
	}
	output = trimPartialRune(string(out.buf))
	if ctx.Err() == context.DeadlineExceeded {
		msg := "Timed out (" + c.def.Timeout.String() + ") running check"
		if output != "" {
			msg += "; output so far: " + output
		}
		return StatusCritical, cutOutput(msg, c.def.OutputMaxSize)
	}
	if cmd.ProcessState == nil {
		// It never started (not found, not executable...).
		return StatusCritical, err.Error()
	}
	switch cmd.ProcessState.ExitCode() {
	case 0:
		return StatusPassing, output
	case 1:
		return StatusWarning, output
	}
	if output == "" && err != nil {
		output = err.Error()
	}
	return StatusCritical, output
}

// killGroup kills the script's process group.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// boundedBuffer keeps the first max bytes written to it and discards the
// rest, so a chatty script costs no memory.
type boundedBuffer struct {
	buf []byte
	max int
}

// Write never fails: a script must not die of SIGPIPE for talking too
// much.
func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
