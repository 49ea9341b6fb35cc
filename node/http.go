package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/config"
)

// Blocking query bounds, as Consul's.
const (
	defaultWait = 5 * time.Minute
	maxWait     = 10 * time.Minute
	// maxBodySize bounds request bodies: a registration is a few KB.
	maxBodySize = 4 << 20
	// readyWait bounds how long a read waits for a restarted server to
	// replay its log before answering 500.
	readyWait = 10 * time.Second
)

// httpError is an error with the status code it answers with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// apiFunc handles one endpoint: it returns the value to encode as JSON
// (nil for an empty 200) or an error.
type apiFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// routes builds the HTTP API.
func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(methods, path string, f apiFunc) {
		for _, m := range strings.Split(methods, ",") {
			mux.Handle(m+" "+path, a.wrap(f))
		}
	}
	const write, read = "PUT,POST", "GET"

	handle(write, "/v1/agent/service/register", a.agentServiceRegister)
	handle(write, "/v1/agent/service/deregister/{id...}", a.agentServiceDeregister)
	handle(read, "/v1/agent/service/{id...}", a.agentService)
	handle(read, "/v1/agent/services", a.agentServices)
	handle(read, "/v1/agent/checks", a.agentChecks)
	handle(write, "/v1/agent/check/register", a.agentCheckRegister)
	handle(write, "/v1/agent/check/deregister/{id...}", a.agentCheckDeregister)
	handle(write, "/v1/agent/check/pass/{id...}", a.agentCheckTTL(catalog.HealthPassing))
	handle(write, "/v1/agent/check/warn/{id...}", a.agentCheckTTL(catalog.HealthWarning))
	handle(write, "/v1/agent/check/fail/{id...}", a.agentCheckTTL(catalog.HealthCritical))
	handle(write, "/v1/agent/check/update/{id...}", a.agentCheckUpdate)
	handle(read, "/v1/agent/self", a.agentSelf)
	handle(write, "/v1/agent/service/maintenance/{id...}", a.agentServiceMaintenance)
	handle(write, "/v1/agent/maintenance", a.agentNodeMaintenance)

	handle(write, "/v1/catalog/register", a.catalogRegister)
	handle(write, "/v1/catalog/deregister", a.catalogDeregister)
	handle(read, "/v1/catalog/services", a.catalogServices)
	handle(read, "/v1/catalog/service/{name...}", a.catalogService)
	handle(read, "/v1/catalog/nodes", a.catalogNodes)
	handle(read, "/v1/catalog/node/{name...}", a.catalogNode)
	handle(read, "/v1/catalog/datacenters", a.catalogDatacenters)

	handle(read, "/v1/health/service/{name...}", a.healthService)
	handle(read, "/v1/health/checks/{name...}", a.healthChecks)
	handle(read, "/v1/health/node/{name...}", a.healthNode)
	handle(read, "/v1/health/state/{state...}", a.healthState)

	handle(read, "/v1/status/leader", a.statusLeader)
	handle(read, "/v1/status/peers", a.statusPeers)
	return mux
}

// wrap turns an apiFunc into a handler: errors become status codes with a
// plain-text message, values become JSON (indented with ?pretty).
func (a *Agent) wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.openRequests.Add(1)
		defer a.openRequests.Add(-1)
		out, err := f(w, r)
		if err != nil {
			code, msg := errorStatus(err)
			if code >= 500 {
				a.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(code)
			io.WriteString(w, msg+"\n")
			return
		}
		if out == nil {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		if _, ok := r.URL.Query()["pretty"]; ok {
			enc.SetIndent("", "    ")
		}
		if err := enc.Encode(out); err != nil {
			a.logger.Debug("write response", "path", r.URL.Path, "error", err)
		}
	})
}

func errorStatus(err error) (int, string) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.code, he.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, config.ErrInvalid), errors.Is(err, catalog.ErrInvalid),
		errors.Is(err, catalog.ErrBadFilter), errors.Is(err, catalog.ErrNotFound):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, consensus.ErrNotLeader):
		return http.StatusInternalServerError, "No cluster leader"
	}
	return http.StatusInternalServerError, err.Error()
}

// decodeBody decodes a JSON request body the way Consul does: unknown
// fields ignored, CamelCase or snake_case keys, durations as "10s" or
// nanoseconds. Errors name the field.
func decodeBody(r *http.Request, w http.ResponseWriter, out any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return badRequest("Request body is missing")
	}
	if err := config.DecodeJSON(body, out, config.DecodeOptions{}); err != nil {
		return badRequest("Request decode failed: %v", err)
	}
	return nil
}

// queryFlag reads a boolean query flag as Consul's clients send them:
// absent is false; "?stale", "?stale=" and "?passing=1" are true;
// "=0" and "=false" are false.
func queryFlag(r *http.Request, name string) (bool, error) {
	vals, ok := r.URL.Query()[name]
	if !ok {
		return false, nil
	}
	v := ""
	if len(vals) > 0 {
		v = vals[0]
	}
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("Invalid value for %q: %q is not a boolean", name, v)
	}
	return b, nil
}

// queryOptions are the parameters every read takes.
type queryOptions struct {
	minIndex   uint64
	wait       time.Duration
	stale      bool
	consistent bool
	filter     string
}

func parseQueryOptions(r *http.Request, dc string) (queryOptions, error) {
	var qo queryOptions
	q := r.URL.Query()
	if v := q.Get("dc"); v != "" && !strings.EqualFold(v, dc) {
		return qo, &httpError{http.StatusInternalServerError, fmt.Sprintf("No path to datacenter %q", v)}
	}
	if v := q.Get("index"); v != "" {
		idx, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return qo, badRequest("Invalid index: %q", v)
		}
		qo.minIndex = idx
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return qo, badRequest("Invalid wait time: %q", v)
		}
		qo.wait = d
	}
	var err error
	if qo.stale, err = queryFlag(r, "stale"); err != nil {
		return qo, err
	}
	if qo.consistent, err = queryFlag(r, "consistent"); err != nil {
		return qo, err
	}
	if qo.stale && qo.consistent {
		return qo, badRequest("Cannot specify ?stale with ?consistent, conflicting semantics.")
	}
	qo.filter = q.Get("filter")
	return qo, nil
}

// blockingRead runs query once, or, with ?index, until its index moves
// past that index or the wait runs out, as Consul's blocking queries do.
// It sets the X-Consul-* headers.
func (a *Agent) blockingRead(w http.ResponseWriter, r *http.Request, query func(ws memdb.WatchSet) (uint64, error)) error {
	qo, err := parseQueryOptions(r, a.cfg.Datacenter)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := a.readReady(ctx, qo); err != nil {
		return err
	}
	if qo.minIndex == 0 {
		idx, err := query(nil)
		if err != nil {
			return err
		}
		a.setMeta(w, max(idx, 1))
		return nil
	}
	wait := qo.wait
	if wait == 0 {
		wait = defaultWait
	}
	wait = min(wait, maxWait)
	// Jitter so that watchers woken together do not all return together.
	wait += rand.N(wait/16 + 1)
	// One deadline for the whole query; it also ends when the client goes
	// away or the agent shuts down (the request's context).
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		ws := memdb.NewWatchSet()
		idx, err := query(ws)
		if err != nil {
			return err
		}
		idx = max(idx, 1)
		if idx != qo.minIndex || ws.WatchCtx(wctx) != nil {
			// Changed, or the wait is over: answer with what is current.
			a.setMeta(w, idx)
			return nil
		}
	}
}

// readReady holds a read until this server's catalog has replayed its log
// and, for ?consistent, until it has confirmed it still leads.
func (a *Agent) readReady(ctx context.Context, qo queryOptions) error {
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-a.raft.Ready():
	case <-t.C:
		return consensus.ErrNotReady
	case <-ctx.Done():
		return ctx.Err()
	}
	if qo.consistent {
		return a.raft.VerifyLeader(ctx)
	}
	if !qo.stale && !a.raft.IsLeader() {
		return consensus.ErrNotLeader
	}
	return nil
}

func (a *Agent) setMeta(w http.ResponseWriter, idx uint64) {
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(a.raft.Leader() != ""))
	h.Set("X-Consul-LastContact", strconv.FormatInt(a.raft.LastContact().Milliseconds(), 10))
}

// orEmpty makes nil slices encode as [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func orEmptyMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

func shuffle[T any](s []T) {
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}

// OpenRequests is the number of HTTP API requests being served now,
// blocking queries included.
func (a *Agent) OpenRequests() int64 { return a.openRequests.Load() }

// nodeMetaFilter reads the repeated ?node-meta=key:value parameter: only
// nodes carrying every pair are kept.
func nodeMetaFilter(r *http.Request) (map[string]string, error) {
	vals := r.URL.Query()["node-meta"]
	if len(vals) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(vals))
	for _, v := range vals {
		k, val, ok := strings.Cut(v, ":")
		if !ok || k == "" {
			return nil, badRequest("Invalid node-meta %q: want key:value", v)
		}
		out[k] = val
	}
	return out, nil
}

// metaMatches reports whether meta holds every pair of want.
func metaMatches(meta, want map[string]string) bool {
	for k, v := range want {
		if got, ok := meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}
