// Package jepsen checks meshd's consistency the way Jepsen does: clients
// write and read a few registers on real servers while faults are
// injected (a leader killed and restarted, a leader paused, a follower
// restarted), every operation is recorded with its invocation and
// response times, and the history is checked for linearizability with
// porcupine against a register model. Traffic goes to 127.0.0.1 only,
// and every loop is bounded by the run's duration.
package jepsen

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is what an operation did.
type Kind int

const (
	// Write registers the register's instance with a new value.
	Write Kind = iota
	// ReadConsistent reads it with ?consistent.
	ReadConsistent
	// ReadDefault reads it in the default mode (no flag).
	ReadDefault
)

func (k Kind) String() string {
	switch k {
	case Write:
		return "write"
	case ReadConsistent:
		return "read?consistent"
	case ReadDefault:
		return "read"
	}
	return fmt.Sprintf("kind-%d", int(k))
}

// Unknown is the Return of an operation whose outcome is unknown (a
// write that timed out or failed): it may take effect at any time after
// its call.
const Unknown = math.MaxInt64

// Op is one recorded operation on one register.
type Op struct {
	Client int
	Key    int
	Kind   Kind
	// Value is what a write wrote, or what a read returned ("" when the
	// register's instance is absent).
	Value string
	// Call and Return are nanoseconds since the run started; Return is
	// Unknown for a write whose outcome is unknown.
	Call, Return int64
	// Server is the HTTP address asked; Index the X-Consul-Index of a
	// read's answer; Err why a write's outcome is unknown.
	Server string
	Index  uint64
	Err    string
	// ServedBy and Term are the server that answered a read from its
	// catalog (after any forward) and its Raft term then.
	ServedBy string
	Term     uint64
}

// History collects the operations of a run. It is safe for concurrent use.
type History struct {
	start time.Time

	mu  sync.Mutex // guards ops
	ops []Op
}

// NewHistory starts a history whose times count from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the time since the history started, in nanoseconds.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations, by call time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	out := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// input is what porcupine sees of a call.
type input struct {
	key   int
	write bool
	value string
}

// registerModel is a set of registers, one per key, each holding the last
// value written ("" at first); checked one key at a time.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[int][]porcupine.Operation{}
		var keys []int
		for _, op := range history {
			k := op.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Ints(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, in, out any) (bool, any) {
		i := in.(input)
		if i.write {
			return true, i.value
		}
		return out.(string) == state.(string), state
	},
	DescribeOperation: func(in, out any) string {
		i := in.(input)
		if i.write {
			return fmt.Sprintf("k%d := %q", i.key, i.value)
		}
		return fmt.Sprintf("k%d -> %q", i.key, out.(string))
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state.(string)) },
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return info.(string)
	},
}

// Result is what checking one mode of a history found.
type Result struct {
	// Mode names the reads checked with the writes.
	Mode Kind
	// Ops is how many operations were checked: every write (those with
	// an unknown outcome included) and the mode's reads that answered.
	Ops int
	// Outcome is porcupine's: Ok, Illegal, or Unknown when the check ran
	// out of time.
	Outcome porcupine.CheckResult
	// Visualization is the HTML file written for a history that is not
	// Ok ("" otherwise).
	Visualization string
	Took          time.Duration
	// For default reads that are not linearizable as recorded: Deposed
	// are the reads answered in an older Raft term than some answer that
	// preceded or overlapped them (a deposed leader that had not noticed
	// yet: the window the README documents), and Explained says the
	// history is linearizable without them.
	Deposed   []Op
	Explained bool
}

// Passed reports whether the check passed: linearizable, or, for default
// reads, linearizable once the deposed leader's answers are set aside.
func (r Result) Passed() bool {
	return r.Outcome == porcupine.Ok || (r.Mode == ReadDefault && r.Explained)
}

// deposedReads returns the reads of kind mode answered in a term older
// than that of an answer whose call came before the read returned. ops
// are by call time.
func deposedReads(ops []Op, mode Kind) []Op {
	// calls[i] is the call time of the i-th answer with a term, and
	// top[i] the highest term among answers 0..i.
	var calls []int64
	var top []uint64
	for _, op := range ops {
		if op.Term > 0 {
			prev := uint64(0)
			if len(top) > 0 {
				prev = top[len(top)-1]
			}
			calls, top = append(calls, op.Call), append(top, max(prev, op.Term))
		}
	}
	var out []Op
	for _, op := range ops {
		if op.Kind != mode || op.Term == 0 {
			continue
		}
		// The answers called no later than the read returned.
		n, _ := slices.BinarySearch(calls, op.Return+1)
		if n > 0 && top[n-1] > op.Term {
			out = append(out, op)
		}
	}
	return out
}

// Check checks the writes of ops with the reads of kind mode, with a time
// limit. For a history that is not linearizable (or could not be decided)
// it writes porcupine's visualization to vizPath, when not empty. Default
// reads that are not linearizable are checked again without the reads a
// deposed leader answered (Result.Deposed, Result.Explained).
func Check(ops []Op, mode Kind, limit time.Duration, vizPath string) (Result, error) {
	res := Result{Mode: mode}
	hist := toPorcupine(ops, mode)
	res.Ops = len(hist)
	start := time.Now()
	outcome, info := porcupine.CheckOperationsVerbose(registerModel, hist, limit)
	res.Outcome, res.Took = outcome, time.Since(start)
	if outcome != porcupine.Ok && vizPath != "" {
		if err := porcupine.VisualizePath(registerModel, info, vizPath); err != nil {
			return res, fmt.Errorf("write visualization: %w", err)
		}
		res.Visualization = vizPath
	}
	if outcome == porcupine.Illegal && mode == ReadDefault {
		res.Deposed = deposedReads(ops, mode)
		if len(res.Deposed) > 0 {
			skip := map[Op]bool{}
			for _, op := range res.Deposed {
				skip[op] = true
			}
			var rest []Op
			for _, op := range ops {
				if !skip[op] {
					rest = append(rest, op)
				}
			}
			res.Explained = porcupine.CheckOperationsTimeout(registerModel, toPorcupine(rest, mode), limit) == porcupine.Ok
		}
	}
	return res, nil
}

// toPorcupine is the writes of ops and the reads of kind mode, as
// porcupine's operations.
func toPorcupine(ops []Op, mode Kind) []porcupine.Operation {
	var hist []porcupine.Operation
	for _, op := range ops {
		if op.Kind != Write && op.Kind != mode {
			continue
		}
		meta := fmt.Sprintf("%s via %s", op.Kind, op.Server)
		if op.ServedBy != "" {
			meta += fmt.Sprintf(", answered by %s in term %d", op.ServedBy, op.Term)
		}
		if op.Err != "" {
			meta += ": " + op.Err
		}
		hist = append(hist, porcupine.Operation{
			ClientId: op.Client,
			Input:    input{key: op.Key, write: op.Kind == Write, value: op.Value},
			Output:   op.Value,
			Call:     op.Call,
			Return:   op.Return,
			Metadata: meta,
		})
	}
	return hist
}
