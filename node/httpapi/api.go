package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/catalog/balance"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/client"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxBodySize bounds request bodies: a registration is a few KB.
const maxBodySize = 4 << 20

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

// handleFunc registers f for a comma-separated list of methods on path.
type handleFunc func(methods, path string, f apiFunc)

// Methods lists of the routes.
const write, read = "PUT,POST", "GET"

// Config is what the API answers from. Each part is the narrow view the
// handlers need; the agent supplies them.
type Config struct {
	// Runtime is the agent's configuration; the API only reads it.
	Runtime *config.Runtime
	// Servers takes the catalog reads and writes: the servers' methods
	// (node/server), in-process on a server, over RPC on a client.
	Servers rpc.Caller
	// Cache holds a client agent's watched health/service answers; nil on
	// a server, which reads its own catalog.
	Cache *client.Cache
	// Agent changes the agent's own services and checks; Local reads them.
	Agent Agent
	Local Local
	// Members is the agent's view of the gossip pools.
	Members Members
	// Operator is a server's Raft configuration and snapshots (nil on a
	// client agent).
	Operator Operator
	// Blocking admits a blocking query from a client's remote address
	// (host:port; a server's limits.max_blocking_queries_per_client holds
	// each host to its share), returning the func that frees its slot;
	// nil: no limit.
	Blocking func(addr string) (done func(), err error)
	// Metrics registers the API's request histogram, and is what
	// /v1/agent/metrics serves (nil: a registry of the API's own).
	Metrics *prometheus.Registry
	Logger  *slog.Logger
}

// API is the agent's HTTP API (Consul's /v1). Make it with New; Handler
// serves it. It is safe for concurrent use.
type API struct {
	cfg      *config.Runtime
	servers  rpc.Caller
	cache    *client.Cache
	agent    Agent
	local    Local
	members  Members
	operator Operator
	// balancer remembers the turns of /v1/lb/service.
	balancer *balance.Balancer
	// scrape serves the metrics in Prometheus' text format.
	scrape   http.Handler
	blocking func(addr string) (func(), error)
	metrics  *prometheus.Registry
	logger   *slog.Logger

	duration     *prometheus.HistogramVec
	openRequests atomic.Int64
}

// New returns the API over cfg, registering its metrics. It starts
// nothing.
func New(cfg Config) *API {
	h := &API{cfg: cfg.Runtime, servers: cfg.Servers, cache: cfg.Cache, agent: cfg.Agent, local: cfg.Local,
		members: cfg.Members, operator: cfg.Operator, balancer: balance.New(0), blocking: cfg.Blocking,
		metrics: cfg.Metrics, logger: cfg.Logger}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "meshd_http_request_duration_seconds", Help: "HTTP API requests, by route, method, status code and blocking (a query with ?index).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10), // 50 µs to 13 s, as the agent's other latencies
	}, []string{"route", "method", "code", "blocking"})
	if h.metrics == nil {
		h.metrics = prometheus.NewRegistry()
	}
	h.metrics.MustRegister(h.duration)
	h.scrape = promhttp.HandlerFor(h.metrics, promhttp.HandlerOpts{})
	return h
}

// Handler routes the API; each file of this package declares its routes
// beside their handlers.
func (h *API) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(methods, path string, f apiFunc) {
		for _, m := range strings.Split(methods, ",") {
			mux.Handle(m+" "+path, h.timed(path, h.wrap(f)))
		}
	}
	h.agentRoutes(handle)
	h.catalogRoutes(handle)
	h.healthRoutes(handle)
	h.operatorRoutes(handle)
	h.queryRoutes(handle)
	h.lbRoutes(handle)
	if h.cfg.EnableDebug {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// OpenRequests is the number of requests being served now, blocking
// queries included.
func (h *API) OpenRequests() int64 { return h.openRequests.Load() }

// wrap turns an apiFunc into a handler: errors become status codes with a
// plain-text message, values become JSON (indented with ?pretty).
func (h *API) wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.openRequests.Add(1)
		defer h.openRequests.Add(-1)
		out, err := h.serveLimited(w, r, f)
		if err != nil {
			code, msg := errorStatus(err)
			// 503 is an answer ("nothing healthy"), not a failure.
			if code >= 500 && code != http.StatusServiceUnavailable {
				h.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
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
		_, pretty := r.URL.Query()["pretty"]
		if l, ok := out.(encodedList); ok && !pretty {
			// Encoded already: written as it is, not scanned again.
			b := append(l.appendTo(nil), '\n')
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			if _, err := w.Write(b); err != nil {
				h.logger.Debug("write response", "path", r.URL.Path, "error", err)
			}
			return
		}
		enc := json.NewEncoder(w)
		if pretty {
			enc.SetIndent("", "    ")
		}
		if err := enc.Encode(out); err != nil {
			h.logger.Debug("write response", "path", r.URL.Path, "error", err)
		}
	})
}

// timed records each request's latency under its route pattern (not its
// path: the label set stays bounded).
func (h *API) timed(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		idx := r.URL.Query().Get("index")
		blocking := strconv.FormatBool(r.Method == http.MethodGet && idx != "" && idx != "0")
		h.duration.WithLabelValues(route, r.Method, strconv.Itoa(sw.code), blocking).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets streaming handlers (snapshot save) flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// serveLimited runs f, holding a blocking query (a read with ?index) on
// a server to the blocking limit of the address it came from.
func (h *API) serveLimited(w http.ResponseWriter, r *http.Request, f apiFunc) (any, error) {
	if h.blocking != nil && r.Method == http.MethodGet {
		if idx := r.URL.Query().Get("index"); idx != "" && idx != "0" {
			done, err := h.blocking(r.RemoteAddr)
			if err != nil {
				return nil, err
			}
			defer done()
		}
	}
	return f(w, r)
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
	case errors.Is(err, server.ErrRateLimited), errors.Is(err, server.ErrTooManyBlocking):
		return http.StatusTooManyRequests, err.Error()
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

// parseQueryOptions reads what every read takes: ?dc, ?index, ?wait,
// ?stale, ?consistent.
func parseQueryOptions(r *http.Request, dc string) (rpc.QueryOptions, error) {
	var qo rpc.QueryOptions
	q := r.URL.Query()
	var err error
	if qo.Datacenter, err = requestDC(r, dc); err != nil {
		return qo, err
	}
	if v := q.Get("index"); v != "" {
		idx, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return qo, badRequest("Invalid index: %q", v)
		}
		qo.MinIndex = idx
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return qo, badRequest("Invalid wait time: %q", v)
		}
		qo.MaxWait = d
	}
	if qo.AllowStale, err = queryFlag(r, "stale"); err != nil {
		return qo, err
	}
	if qo.RequireConsistent, err = queryFlag(r, "consistent"); err != nil {
		return qo, err
	}
	if v := q.Get("max_stale"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return qo, badRequest("Invalid max_stale: %q", v)
		}
		qo.MaxStale = d
	}
	if qo.AllowStale && qo.RequireConsistent {
		return qo, badRequest("Cannot specify ?stale with ?consistent, conflicting semantics.")
	}
	return qo, nil
}

// requestDC reads ?dc: "" for this agent's datacenter (local), else the
// datacenter named, lower-cased, which must be a valid datacenter name.
func requestDC(r *http.Request, local string) (string, error) {
	return datacenterParam("dc", r.URL.Query().Get("dc"), local)
}

// datacenterParam checks a datacenter named by field: "" when it is empty
// or this agent's own, else the name lower-cased.
func datacenterParam(field, v, local string) (string, error) {
	if v == "" || strings.EqualFold(v, local) {
		return "", nil
	}
	v = strings.ToLower(v)
	if !config.ValidDatacenter(v) {
		return "", badRequest("Invalid %s %q: a datacenter name is a DNS label (letters, digits and dashes)", field, v)
	}
	return v, nil
}

// setMeta writes an answer's X-Consul-* headers; the index is never below 1.
func setMeta(w http.ResponseWriter, m rpc.QueryMeta) {
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(max(m.Index, 1), 10))
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(m.KnownLeader))
	h.Set("X-Consul-LastContact", strconv.FormatInt(m.LastContact.Milliseconds(), 10))
	if m.Server != "" {
		h.Set("X-Meshd-Server", m.Server)
		h.Set("X-Meshd-Term", strconv.FormatUint(m.Term, 10))
	}
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

// Error is an error with the status code the API answers it with, for the
// agent's operations whose failures are the caller's: Error(400, ...).
func Error(code int, format string, args ...any) error {
	return &httpError{code, fmt.Sprintf(format, args...)}
}
