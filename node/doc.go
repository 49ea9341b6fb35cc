// Package node is the meshd agent: it loads nothing and serves nothing of
// its own, but composes the parts and owns their lifecycle (New, Start,
// Shutdown). The work is in its sub-packages: node/server (the servers'
// RPC surface, forwarding, the leader's duties), node/client (a client
// agent's remote caller and cache), node/local (the agent's own services
// and checks, kept in its data dir and synced to the catalog), node/httpapi
// (the Consul-compatible HTTP API) and node/rpc (the wire). What is left
// here is the wiring: which parts run (a server's are serverParts), the
// gossip pools they share, and the adapters the HTTP API, DNS and the
// check runner see.
package node
