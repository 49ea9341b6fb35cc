package consensus

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"
)

// crashChildEnv makes the test binary play the process that writes the
// log and is killed (TestLogSurvivesCrashAfterTailTruncation).
const crashChildEnv = "MESHD_TEST_LOG_CRASH_DIR"

// Sizes of the crash scenario: small segments so the log spans several,
// and a truncation that reaches back into a sealed one as well as one
// within the open segment.
const (
	crashSegmentSize = 8 << 10
	crashEntries     = 400
	crashEntrySize   = 100
)

func crashLog(i uint64, gen string) *raft.Log {
	data := fmt.Appendf(nil, "%s-%06d-", gen, i)
	for len(data) < crashEntrySize {
		data = append(data, 'x')
	}
	return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data}
}

// TestLogSurvivesCrashAfterTailTruncation is the sequence that broke
// raft-wal v0.4.0 (hashicorp/raft-wal#31): a follower's uncommitted tail is
// replaced by a new leader's (Raft deletes the tail, then appends), and
// the process is killed; every restart then failed with "sealed segment
// has no index block". A child process writes and is killed with SIGKILL;
// the log must open again and hold exactly what was written last.
func TestLogSurvivesCrashAfterTailTruncation(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns
	}
	for _, tc := range []struct {
		name     string
		truncate uint64 // first index deleted; the tail up to the end goes
		rewrite  uint64 // entries written again from there
	}{
		{"last entry, nothing after", crashEntries, 0},
		{"last entry, rewritten", crashEntries, 5},
		{"into a sealed segment, rewritten", crashEntries / 4, 20},
		{"into a sealed segment, nothing after", crashEntries / 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run", "^TestLogSurvivesCrashAfterTailTruncation$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+dir,
				"MESHD_TEST_LOG_TRUNCATE="+strconv.FormatUint(tc.truncate, 10),
				"MESHD_TEST_LOG_REWRITE="+strconv.FormatUint(tc.rewrite, 10))
			out, err := cmd.CombinedOutput()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die by SIGKILL (%v): %s", err, out)
			}
			w, meta, err := openLog(filepath.Join(dir, "wal"), testLogger(t), crashSegmentSize)
			if err != nil {
				t.Fatalf("reopen after the crash: %v", err)
			}
			defer meta.Close()
			defer w.Close()
			last := tc.truncate - 1 + tc.rewrite
			if fi, _ := w.FirstIndex(); fi != 1 {
				t.Errorf("first index %d, want 1", fi)
			}
			if li, _ := w.LastIndex(); li != last {
				t.Errorf("last index %d, want %d", li, last)
			}
			for i := uint64(1); i <= last; i++ {
				gen := "old"
				if i >= tc.truncate {
					gen = "new"
				}
				var l raft.Log
				if err := w.GetLog(i, &l); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				if want := crashLog(i, gen).Data; string(l.Data) != string(want) {
					t.Fatalf("entry %d holds %q, want %q", i, l.Data, want)
				}
			}
			// And it takes writes again.
			if err := w.StoreLog(crashLog(last+1, "after")); err != nil {
				t.Fatalf("append after restart: %v", err)
			}
		})
	}
}

// crashChild writes crashEntries entries, deletes the tail from
// MESHD_TEST_LOG_TRUNCATE, writes MESHD_TEST_LOG_REWRITE new ones and
// kills itself without closing anything.
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	truncate, err := strconv.ParseUint(os.Getenv("MESHD_TEST_LOG_TRUNCATE"), 10, 64)
	if err != nil {
		fail(err)
	}
	rewrite, err := strconv.ParseUint(os.Getenv("MESHD_TEST_LOG_REWRITE"), 10, 64)
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
		fail(err)
	}
	w, _, err := openLog(filepath.Join(dir, "wal"), slog.New(slog.DiscardHandler), crashSegmentSize)
	if err != nil {
		fail(err)
	}
	for i := uint64(1); i <= crashEntries; i++ {
		if err := w.StoreLog(crashLog(i, "old")); err != nil {
			fail(err)
		}
	}
	if err := w.DeleteRange(truncate, crashEntries); err != nil {
		fail(err)
	}
	for i := truncate; i < truncate+rewrite; i++ {
		if err := w.StoreLog(crashLog(i, "new")); err != nil {
			fail(err)
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
