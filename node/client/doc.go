// Package client is a client agent's side of the servers: Remote, the
// rpc.Caller that sends each call to a server of its datacenter (sticking
// to one, moving on when it cannot answer), and Cache, the health/service
// answers the agent's DNS and HTTP lookups read from memory, each kept
// current by one blocking query on the servers.
package client
