package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/server"
)

// TestErrorStatus: an error becomes the status Consul's clients expect,
// whether it was raised here or came back from a server over RPC with
// its code.
func TestErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
	}{
		{"bad request", badRequest("Invalid index: %q", "x"), http.StatusBadRequest},
		{"not found", notFound("Unknown check ID %q", "c"), http.StatusNotFound},
		{"config field", &config.FieldError{Path: "Port", Err: errors.New("must be a number")}, http.StatusBadRequest},
		{"catalog invalid", fmt.Errorf("%w: Node: missing", catalog.ErrInvalid), http.StatusBadRequest},
		{"remote invalid", server.Codes.Remote("invalid", "invalid request: Node: missing"), http.StatusBadRequest},
		{"remote bad filter", server.Codes.Remote("bad_filter", "bad filter: x"), http.StatusBadRequest},
		{"no leader", fmt.Errorf("%w: no reachable leader", consensus.ErrNotLeader), http.StatusInternalServerError},
		{"remote rate limited", server.Codes.Remote("rate_limited", "rate limit exceeded: c1"), http.StatusTooManyRequests},
		{"older server's blocking refusal", server.Codes.Remote("", "too many concurrent blocking queries: c1"), http.StatusTooManyRequests},
		{"anything else", errors.New("boom"), http.StatusInternalServerError},
	} {
		if code, _ := errorStatus(tc.err); code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.code)
		}
	}
	if _, msg := errorStatus(fmt.Errorf("%w: x", consensus.ErrNotLeader)); msg != "No cluster leader" {
		t.Errorf("no leader answers %q, Consul's text is %q", msg, "No cluster leader")
	}
}

// TestParseQueryOptions: what every read takes, as Consul's clients send
// it, and the refusals, naming the parameter.
func TestParseQueryOptions(t *testing.T) {
	get := func(q string) *http.Request { return httptest.NewRequest(http.MethodGet, "/v1/catalog/nodes?"+q, nil) }
	qo, err := parseQueryOptions(get("index=7&wait=30s&stale&max_stale=2s&dc=DC2"), "dc1")
	if err != nil || qo.MinIndex != 7 || qo.MaxWait != 30*time.Second || !qo.AllowStale || qo.MaxStale != 2*time.Second || qo.Datacenter != "dc2" {
		t.Fatalf("options = %+v, %v", qo, err)
	}
	if qo, err := parseQueryOptions(get("dc=DC1&consistent"), "dc1"); err != nil || qo.Datacenter != "" || !qo.RequireConsistent {
		t.Fatalf("own datacenter = %+v, %v", qo, err)
	}
	for _, q := range []string{"index=x", "wait=-1s", "stale&consistent", "dc=no_such!", "max_stale=soon", "stale=maybe"} {
		if _, err := parseQueryOptions(get(q), "dc1"); err == nil {
			t.Errorf("?%s accepted", q)
		} else if code, _ := errorStatus(err); code != http.StatusBadRequest {
			t.Errorf("?%s: %d, want 400", q, code)
		}
	}
}
