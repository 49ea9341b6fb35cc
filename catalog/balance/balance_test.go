package balance

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
)

func inst(node, id string, passing, warning int, status catalog.HealthStatus) *catalog.CheckServiceNode {
	in := &catalog.CheckServiceNode{
		Node:    &catalog.Node{Node: node, Address: "10.0.0.1"},
		Service: &catalog.Service{ID: id, Service: "web", Weights: catalog.Weights{Passing: passing, Warning: warning}},
	}
	if status != "" {
		in.Checks = []*catalog.Check{{Node: node, CheckID: "c", Status: status}}
	}
	return in
}

// TestWeightedShares draws 10,000 picks and checks that each instance's
// share is its weight's share within 2.5 percentage points. With 10,000
// draws one standard deviation of a share is at most 0.5 points, so the
// bound is five of them: a false failure is about one in a million.
func TestWeightedShares(t *testing.T) {
	const picks, tolerance = 10_000, 0.025
	insts := []*catalog.CheckServiceNode{
		inst("n1", "a", 1, 1, ""),
		inst("n2", "b", 2, 1, ""),
		inst("n3", "c", 3, 1, ""),
		inst("n4", "d", 10, 4, catalog.HealthWarning), // counts 4
		inst("n5", "e", 0, 0, ""),                     // unset: default weight 1
		inst("n6", "f", 5, 0, catalog.HealthWarning),  // warning weight 0: never
	}
	want := []float64{1, 2, 3, 4, 1, 0}
	total := 0.0
	for _, w := range want {
		total += w
	}
	counts := make([]int, len(insts))
	for range picks {
		counts[Weighted(insts)]++
	}
	for i, c := range counts {
		got, exp := float64(c)/picks, want[i]/total
		t.Logf("%s: %d picks, share %.4f, expected %.4f", insts[i].Service.ID, c, got, exp)
		if math.Abs(got-exp) > tolerance {
			t.Errorf("%s: share %.4f, want %.4f ± %.3f", insts[i].Service.ID, got, exp, tolerance)
		}
	}
	if counts[5] != 0 {
		t.Errorf("weight-0 instance picked %d times", counts[5])
	}
}

func TestWeightedEdges(t *testing.T) {
	if got := Weighted(nil); got != -1 {
		t.Errorf("Weighted(nil) = %d, want -1", got)
	}
	one := []*catalog.CheckServiceNode{inst("n1", "a", 0, 0, catalog.HealthWarning)}
	if got := Weighted(one); got != 0 {
		t.Errorf("Weighted(one) = %d, want 0", got)
	}
	// All weights zero: still an answer, uniformly.
	zero := []*catalog.CheckServiceNode{inst("n1", "a", 3, 0, catalog.HealthWarning), inst("n2", "b", 3, 0, catalog.HealthWarning)}
	seen := map[int]bool{}
	for range 200 {
		seen[Weighted(zero)] = true
	}
	if len(seen) != 2 {
		t.Errorf("all-zero weights picked %v, want both", seen)
	}
}

// TestRoundRobinVisitsAll checks that n picks visit every one of n
// instances once, whatever order the candidates arrive in.
func TestRoundRobinVisitsAll(t *testing.T) {
	b := New(0)
	var insts []*catalog.CheckServiceNode
	for i := range 7 {
		insts = append(insts, inst(fmt.Sprintf("n%d", i), "web", 1+i, 1, ""))
	}
	for round := range 3 {
		// Reverse the slice each round: the turn must not depend on it.
		for i, j := 0, len(insts)-1; i < j; i, j = i+1, j-1 {
			insts[i], insts[j] = insts[j], insts[i]
		}
		seen := map[string]int{}
		for range len(insts) {
			seen[insts[b.Pick("web", PolicyRoundRobin, insts, nil)].Node.Node]++
		}
		if len(seen) != len(insts) {
			t.Fatalf("round %d: visited %v, want each of %d once", round, seen, len(insts))
		}
	}
	// Another key has its own turn.
	if got := insts[b.Pick("other", PolicyRoundRobin, insts, nil)].Node.Node; got != "n0" {
		t.Errorf("new key starts at %s, want n0", got)
	}
}

func TestLeastRecent(t *testing.T) {
	b := New(0)
	insts := []*catalog.CheckServiceNode{inst("n1", "a", 1, 1, ""), inst("n2", "b", 1, 1, ""), inst("n3", "c", 1, 1, "")}
	var order []string
	for range 6 {
		order = append(order, insts[b.Pick("k", PolicyLeastRecent, insts, nil)].Node.Node)
	}
	if got := fmt.Sprint(order); got != "[n1 n2 n3 n1 n2 n3]" {
		t.Fatalf("picks %s, want each in turn", got)
	}
	// A new instance has never been picked: it goes next.
	insts = append(insts, inst("n0", "z", 1, 1, ""), inst("n4", "y", 1, 1, ""))
	if got := insts[b.Pick("k", PolicyLeastRecent, insts, nil)].Node.Node; got != "n0" {
		t.Errorf("after adding n0 picked %s, want n0", got)
	}
	// The memory follows the set: departed instances are forgotten once
	// they outnumber the set.
	small := insts[:2]
	for range 10 {
		b.Pick("k", PolicyLeastRecent, small, nil)
	}
	b.mu.Lock()
	ks, _ := b.keys.Peek("k")
	n := len(ks.last)
	b.mu.Unlock()
	if n > 2*len(small) {
		t.Errorf("least-recent memory holds %d instances for a set of %d", n, len(small))
	}
}

func TestNearest(t *testing.T) {
	insts := []*catalog.CheckServiceNode{
		inst("far", "a", 1, 1, ""), inst("near1", "b", 1, 1, ""), inst("near2", "c", 1, 1, ""), inst("unknown", "d", 100, 1, ""),
	}
	rtt := map[string]time.Duration{"far": 50 * time.Millisecond, "near1": time.Millisecond, "near2": time.Millisecond}
	dist := func(in *catalog.CheckServiceNode) (time.Duration, bool) {
		d, ok := rtt[in.Node.Node]
		return d, ok
	}
	b := New(0)
	seen := map[string]int{}
	for range 200 {
		seen[insts[b.Pick("k", PolicyNearest, insts, dist)].Node.Node]++
	}
	if seen["far"] != 0 || seen["unknown"] != 0 || seen["near1"] == 0 || seen["near2"] == 0 {
		t.Errorf("nearest picked %v, want near1 and near2 only", seen)
	}
	// No distance known: weighted, so "unknown" (weight 100) dominates.
	none := func(*catalog.CheckServiceNode) (time.Duration, bool) { return 0, false }
	seen = map[string]int{}
	for range 200 {
		seen[insts[b.Pick("k", PolicyNearest, insts, none)].Node.Node]++
	}
	if seen["unknown"] < 150 {
		t.Errorf("without distances picked %v, want mostly the weight-100 instance", seen)
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": PolicyWeighted, "weighted": PolicyWeighted, "round_robin": PolicyRoundRobin,
		"least_recent": PolicyLeastRecent, "nearest": PolicyNearest} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePolicy("random"); err == nil {
		t.Error("ParsePolicy(random) accepted")
	}
}

// TestKeysBounded checks the memory bound and that picks from many
// goroutines share it safely (run with -race).
func TestKeysBounded(t *testing.T) {
	b := New(16)
	insts := []*catalog.CheckServiceNode{inst("n1", "a", 1, 1, ""), inst("n2", "b", 1, 1, "")}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprintf("k%d", (g*500+i)%100)
				b.Pick(key, PolicyRoundRobin, insts, nil)
				b.Pick(key, PolicyLeastRecent, insts, nil)
			}
		})
	}
	wg.Wait()
	if n := b.Keys(); n != 16 {
		t.Errorf("balancer remembers %d keys, want 16", n)
	}
}
