// Package checks runs health checks and reports their status transitions
// through a Notifier that the caller supplies. It knows nothing of Raft or
// of the catalog: the agent decides what a transition costs.
//
// This first cut holds the TTL (heartbeat) check; HTTP, TCP, script, gRPC
// and alias checks follow.
package checks
