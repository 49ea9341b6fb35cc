package catalog

import (
	"fmt"

	"github.com/hashicorp/go-bexpr"
)

// Filter keeps the items that match a go-bexpr expression, the language of
// Consul's ?filter= parameter (`Service.Tags contains "v1"`,
// `Node.Meta.env == "prod"`). Selectors are the Go field names of the
// items. An empty expression keeps everything.
func Filter[T any](expression string, items []T) ([]T, error) {
	if expression == "" {
		return items, nil
	}
	eval, err := bexpr.CreateEvaluator(expression)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFilter, err)
	}
	out := make([]T, 0, len(items))
	for _, item := range items {
		ok, err := eval.Evaluate(item)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadFilter, err)
		}
		if ok {
			out = append(out, item)
		}
	}
	return out, nil
}
