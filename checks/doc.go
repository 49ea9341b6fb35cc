// Package checks runs health checks and reports their status changes
// through a Notifier that the caller supplies. It knows nothing of Raft or
// of the catalog: the agent decides what a change costs.
//
// A Runner runs checks of six kinds, each described by a Definition:
// HTTP, TCP, script (an argv, no shell, opt-in), gRPC (the standard
// health service), TTL (heartbeats through Runner.Heartbeat) and alias
// (the health of another service instance, read from an AliasSource).
//
// Scheduling: the first run of an HTTP, TCP, script or gRPC check comes
// at a random offset within its Interval, so checks registered together
// spread out; each later run comes one Interval after the previous run
// ended. Each run is bounded by the check's Timeout.
//
// Thresholds: a check turns critical after FailuresBeforeCritical failed
// runs in a row (default 2) and passing after SuccessBeforePassing passing
// runs in a row (default 1); until then its status stays as it was. The
// first failure of a streak that has not reached the threshold is retried
// at once, and the retry counts: with the default, a dead endpoint is
// critical about one timeout after the run that found it, and a single
// lost request changes nothing. A warning (HTTP 429, script exit 1) is
// reported at once and resets both counts. TTL and alias checks report
// every result at once.
//
// Flap damping (opt-in, FlapThreshold and FlapWindow): a check whose
// status changed more than FlapThreshold times within FlapWindow is held
// critical, its output saying so, until enough of those changes have left
// the window.
//
// The Notifier hears only changes of status or output: a steady check
// costs nothing. An HTTP body that changes on every request (a timestamp)
// changes the output on every run; rate-limiting such writes is the
// caller's business.
package checks
