// Package balance picks one service instance out of many: the server-side
// half of meshd's load balancing, shared by the HTTP endpoint
// /v1/lb/service/:name and DNS single answers. Client-side balancing needs
// no code here: every list answer is shuffled and carries the weights.
//
// Every function takes instances that are already healthy and filtered;
// none of them reads the catalog.
package balance

import (
	"math/rand/v2"

	"github.com/meshd/meshd/catalog"
)

// Weighted picks the index of one of insts at random, each with a
// probability proportional to its Weight. When every weight is 0 (all
// instances set weight 0 for their state) it picks uniformly: an instance
// that is healthy is better than no answer. It returns -1 for no
// instances.
func Weighted(insts []*catalog.CheckServiceNode) int {
	switch len(insts) {
	case 0:
		return -1
	case 1:
		return 0
	}
	total := 0
	for _, in := range insts {
		total += in.Weight()
	}
	if total <= 0 {
		return rand.IntN(len(insts))
	}
	r := rand.IntN(total)
	for i, in := range insts {
		r -= in.Weight()
		if r < 0 {
			return i
		}
	}
	return len(insts) - 1 // unreachable: r < total
}
