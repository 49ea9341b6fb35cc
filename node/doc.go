// Package node is the meshd agent: it loads the configuration, composes the
// catalog, Raft, DNS and health checks, serves the Consul-compatible HTTP
// API, and keeps the catalog in step with the services registered on this
// host (anti-entropy).
//
// The agent's own registrations live in its local state, persisted in the
// data dir, and reach the catalog through the sync loop: at once on every
// change, and in full at an interval so the catalog heals from any drift.
// A server agent applies them to Raft in-process; the path is the same
// once agents talk to servers over the network.
package node

import ()
