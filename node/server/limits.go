package server

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// clientIdle is how long a client's bookkeeping stays once it has no call
// in flight and has sent nothing.
const clientIdle = 10 * time.Minute

// Limits holds each client of a server to limits.rpc_rate_per_client
// (a token bucket per calling agent) and
// limits.max_blocking_queries_per_client (blocking queries held open at
// once, RPC ones per agent, HTTP ones per address), and counts what each
// sends. It is safe for concurrent use.
type Limits struct {
	limit       rate.Limit // 0: no rate limit
	burst       int
	maxBlocking int // 0: no limit
	metrics     limitMetrics
	now         func() time.Time

	mu        sync.Mutex // guards the fields below
	clients   map[string]*clientUse
	lastSweep time.Time
}

// clientUse is one client's share.
type clientUse struct {
	limiter  *rate.Limiter // nil without a rate limit
	blocking int
	lastSeen time.Time
}

// limitMetrics are what Limits counts: RPCs taken, by method; by
// calling agent; refused, by agent and reason; blocking queries held
// open, by agent.
type limitMetrics struct {
	rpcRequests    *prometheus.CounterVec
	clientRequests *prometheus.CounterVec
	clientRefused  *prometheus.CounterVec
	clientBlocking *prometheus.GaugeVec
}

// NewLimits returns the limits of cfg, registering their metrics on reg
// (nil: none).
func NewLimits(cfg config.LimitsConfig, reg prometheus.Registerer) *Limits {
	m := limitMetrics{
		rpcRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_rpc_requests_total", Help: "RPCs this server took, by method.",
		}, []string{"method"}),
		clientRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_rpc_client_requests_total", Help: "RPCs this server took from each agent (forwarded calls from servers excluded).",
		}, []string{"client"}),
		clientRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_rpc_client_refused_total", Help: "Calls refused with 429, by agent (or HTTP client address) and limit: rate or blocking.",
		}, []string{"client", "limit"}),
		clientBlocking: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshd_rpc_client_blocking_queries", Help: "Blocking queries this server holds open, by agent (or HTTP client address).",
		}, []string{"client"}),
	}
	if reg != nil {
		reg.MustRegister(m.rpcRequests, m.clientRequests, m.clientRefused, m.clientBlocking)
	}
	return &Limits{
		limit: rate.Limit(cfg.RPCRatePerClient), burst: cfg.RPCBurstPerClient, maxBlocking: cfg.MaxBlockingQueriesPerClient,
		metrics: m, now: time.Now, clients: make(map[string]*clientUse),
	}
}

// AdmitFor returns the rpc.Admit of a connection that opened with hello
// from remote. A server's forwarded calls are counted, not limited: the
// server they came through held their client to its limits.
func (l *Limits) AdmitFor(remote net.Addr) func(rpc.Hello) rpc.Admit {
	return func(h rpc.Hello) rpc.Admit {
		if h.Server {
			return func(method string, _ any) (func(), error) {
				l.metrics.rpcRequests.WithLabelValues(method).Inc()
				return nil, nil
			}
		}
		client := h.Node
		if client == "" {
			client = hostOf(remote.String())
		}
		return func(method string, args any) (func(), error) {
			l.metrics.rpcRequests.WithLabelValues(method).Inc()
			l.metrics.clientRequests.WithLabelValues(client).Inc()
			return l.admit(client, rpc.IsBlocking(args))
		}
	}
}

// admit takes one call from client against its rate, and when blocking
// one of its blocking slots, released by the func it returns.
func (l *Limits) admit(client string, blocking bool) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	u := l.useLocked(client, now)
	if u.limiter != nil && !u.limiter.AllowN(now, 1) {
		l.metrics.clientRefused.WithLabelValues(client, "rate").Inc()
		return nil, fmt.Errorf("%w: %s sent more than %d RPCs/s (burst %d); slow down or raise limits.rpc_rate_per_client",
			ErrRateLimited, client, int(l.limit), l.burst)
	}
	if !blocking {
		return nil, nil
	}
	return l.enterLocked(client, u)
}

// EnterBlocking takes a blocking slot for the HTTP client at remote
// address addr (host:port; each host has its share), and returns the
// func that frees it.
func (l *Limits) EnterBlocking(addr string) (func(), error) {
	addr = hostOf(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.enterLocked(addr, l.useLocked(addr, l.now()))
}

func (l *Limits) enterLocked(client string, u *clientUse) (func(), error) {
	if l.maxBlocking > 0 && u.blocking >= l.maxBlocking {
		l.metrics.clientRefused.WithLabelValues(client, "blocking").Inc()
		return nil, fmt.Errorf("%w: %s holds %d open on this server; raise limits.max_blocking_queries_per_client",
			ErrTooManyBlocking, client, u.blocking)
	}
	u.blocking++
	l.metrics.clientBlocking.WithLabelValues(client).Set(float64(u.blocking))
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			u.blocking--
			u.lastSeen = l.now()
			l.metrics.clientBlocking.WithLabelValues(client).Set(float64(u.blocking))
		})
	}, nil
}

// useLocked returns client's share, creating it, and now and then drops
// the shares (and metric series) of clients gone quiet. The caller holds
// l.mu.
func (l *Limits) useLocked(client string, now time.Time) *clientUse {
	if now.Sub(l.lastSweep) > time.Minute {
		l.lastSweep = now
		for name, u := range l.clients {
			if u.blocking == 0 && now.Sub(u.lastSeen) > clientIdle {
				delete(l.clients, name)
				l.metrics.clientRequests.DeleteLabelValues(name)
				l.metrics.clientBlocking.DeleteLabelValues(name)
				l.metrics.clientRefused.DeleteLabelValues(name, "rate")
				l.metrics.clientRefused.DeleteLabelValues(name, "blocking")
			}
		}
	}
	u, ok := l.clients[client]
	if !ok {
		u = &clientUse{}
		if l.limit > 0 {
			u.limiter = rate.NewLimiter(l.limit, l.burst)
		}
		l.clients[client] = u
	}
	u.lastSeen = now
	return u
}

// hostOf is the IP of a host:port address, or the address itself.
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
