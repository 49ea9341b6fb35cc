package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/meshd/meshd/internal/clock"
	"github.com/meshd/meshd/internal/inflight"
)

var (
	// ErrShutdown is returned by a Runner that has been shut down.
	ErrShutdown = errors.New("check runner shut down")
	// ErrUnknownCheck is returned for a check ID the Runner does not run.
	ErrUnknownCheck = errors.New("unknown check")
	// ErrNotTTL is returned by Heartbeat for a check that is not a TTL check.
	ErrNotTTL = errors.New("not a TTL check")
	// ErrScriptsDisabled is returned by Add for a script check when
	// Config.EnableScripts is false.
	ErrScriptsDisabled = errors.New("script checks are disabled")
	// ErrNoAliasSource is returned by Add for an alias check when
	// Config.Alias is nil.
	ErrNoAliasSource = errors.New("alias checks need an alias source")
	// ErrInvalidStatus is returned for a status other than passing,
	// warning or critical.
	ErrInvalidStatus = errors.New("invalid check status")
	// ErrInvalid is wrapped by every *FieldError: a Definition or Config
	// that fails validation.
	ErrInvalid = errors.New("invalid check configuration")
)

// FieldError is a validation error that names the field at fault. It
// wraps ErrInvalid.
type FieldError struct {
	Field   string // the Definition or Config field, e.g. "Interval"
	Problem string // e.g. "must be positive"
}

// Error returns "Field: problem".
func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, problem string) error { return &FieldError{Field: field, Problem: problem} }

// AliasSource tells an alias check the health of the instance it mirrors.
// The agent implements it.
type AliasSource interface {
	// AliasHealth blocks until the aggregated status of service serviceID
	// on node (node "" = this agent's node) has an index other than
	// lastIndex, or ctx ends; it returns the worst status of the
	// instance's checks and its node checks ("critical" with an
	// explanatory output when the instance does not exist) and the new
	// index.
	AliasHealth(ctx context.Context, node, serviceID string, lastIndex uint64) (status, output string, index uint64, err error)
}

// Config is what a Runner needs. Notifier is required.
type Config struct {
	// Notifier receives (checkID, status, output) after thresholds and
	// flap damping, only when one of them changed. See Notifier for the
	// locking rules.
	Notifier Notifier
	// Clock schedules runs, TTLs, flap windows and alias back-offs; nil
	// is the wall clock. Probe timeouts bound real I/O and always run on
	// the wall clock.
	Clock clock.Clock
	// Alias answers alias checks; required only for them.
	Alias AliasSource
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// EnableScripts lets Add accept script checks; when false, Add
	// refuses them with ErrScriptsDisabled (the agent decides per source
	// of the definition).
	EnableScripts bool
	// Observe, when set, hears of each probe an active check ran, with
	// its kind (http, tcp, script, grpc) and raw result (before
	// thresholds), changed false; and of each status change the runner
	// reports (any kind), changed true. For metrics: it must be quick (a
	// change is observed with the check's lock held).
	Observe func(kind, status string, changed bool)
}

// Validate reports a missing Notifier as a *FieldError.
func (c *Config) Validate() error {
	if c.Notifier == nil {
		return fieldErr("Notifier", "required")
	}
	return nil
}

// Runner runs health checks and reports their status changes to a
// Notifier. Each HTTP, TCP, script, gRPC and alias check runs in one
// goroutine of its own, started by Add and stopped by Remove or Shutdown;
// TTL checks have no goroutine, only a timer. Its methods are safe for
// concurrent use.
type Runner struct {
	notifier      Notifier
	clock         clock.Clock
	alias         AliasSource
	logger        *slog.Logger
	enableScripts bool
	observe       func(kind, status string, changed bool)

	// One transport per TLS setting, shared by all HTTP checks.
	httpClient     *http.Client
	httpSkipClient *http.Client

	// running counts the goroutines the runner started: one per active
	// or alias check, and timer callbacks in flight.
	running inflight.Tracker

	mu     sync.RWMutex // guards the fields below
	checks map[string]*check
	closed bool
}

// NewRunner validates cfg and returns a Runner; it starts nothing.
func NewRunner(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Wall{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		notifier:       cfg.Notifier,
		clock:          cfg.Clock,
		alias:          cfg.Alias,
		logger:         cfg.Logger.With("component", "checks"),
		enableScripts:  cfg.EnableScripts,
		observe:        cfg.Observe,
		httpClient:     newHTTPClient(false),
		httpSkipClient: newHTTPClient(true),
		checks:         make(map[string]*check),
	}, nil
}

// Add validates def and starts running it with the status the Notifier
// already shows for it (initial "" means critical; the output shown is
// taken to be unknown, so the first result is reported even if its status
// is the same). A check with the same ID is replaced: Add stops the old
// one, waiting for its probe in flight to be cancelled, before it starts
// the new one, and nothing of the old one is reported after Add returns.
// The first run of an active check comes at a random offset within one
// Interval; a TTL check must hear a heartbeat within one TTL.
func (r *Runner) Add(def Definition, initial string) error {
	if err := def.Validate(); err != nil {
		return err
	}
	if initial == "" {
		initial = StatusCritical
	}
	if !validStatus(initial) {
		return fmt.Errorf("initial status %q: %w", initial, ErrInvalidStatus)
	}
	kind := def.Kind()
	if kind == KindScript && !r.enableScripts {
		return ErrScriptsDisabled
	}
	if kind == KindAlias && r.alias == nil {
		return ErrNoAliasSource
	}
	c := newCheck(r, def.withDefaults(), kind, initial)

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.cancel()
		return ErrShutdown
	}
	old := r.checks[def.ID]
	c.prev = old // before c is visible: signal and wait follow the chain
	r.checks[def.ID] = c
	r.mu.Unlock()

	if old != nil {
		old.signal()
		old.wait()
	}
	c.start()
	return nil
}

// Remove stops the check with this ID, if any, cancelling its probe in
// flight. Nothing of it is reported after Remove returns.
func (r *Runner) Remove(id string) {
	r.mu.Lock()
	c := r.checks[id]
	delete(r.checks, id)
	r.mu.Unlock()
	if c != nil {
		c.signal()
		c.wait()
	}
}

// Heartbeat records the status and output of a TTL check and restarts its
// TTL. It reports them to the Notifier, from the caller's goroutine,
// only if they differ from what it shows. It returns ErrUnknownCheck,
// ErrNotTTL, ErrInvalidStatus or ErrShutdown.
func (r *Runner) Heartbeat(id, status, output string) error {
	if !validStatus(status) {
		return fmt.Errorf("status %q: %w", status, ErrInvalidStatus)
	}
	r.mu.RLock()
	c, closed := r.checks[id], r.closed
	r.mu.RUnlock()
	switch {
	case closed:
		return ErrShutdown
	case c == nil:
		return ErrUnknownCheck
	case c.kind != KindTTL:
		return ErrNotTTL
	}
	return c.heartbeat(status, output)
}

// Shutdown stops every check, cancelling the probes in flight (scripts
// are killed with their process group, HTTP and gRPC requests aborted),
// and waits for every goroutine the Runner started. Nothing is reported
// once it has returned nil. It is idempotent; if ctx ends first it
// returns ctx.Err() and the checks finish stopping in the background.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	stopping := r.checks
	r.checks = nil
	r.closed = true
	r.mu.Unlock()
	// Signal all first, so the probes are cancelled in parallel. A check
	// that Remove is stopping at the same time is not in the map, but its
	// goroutine is counted in running.
	for _, c := range stopping {
		c.signal()
	}
	if err := r.running.CloseAndWait(ctx); err != nil {
		return err
	}
	r.httpClient.CloseIdleConnections()
	r.httpSkipClient.CloseIdleConnections()
	return nil
}

// afterFunc runs f after d on the runner's clock, tracked so that
// Shutdown waits for it; after Shutdown f is not called.
func (r *Runner) afterFunc(d time.Duration, f func()) clock.Timer {
	return r.clock.AfterFunc(d, func() {
		if !r.running.Enter() {
			return
		}
		defer r.running.Exit()
		f()
	})
}
