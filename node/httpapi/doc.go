// Package httpapi is the agent's HTTP API, Consul's /v1 endpoints in JSON.
// It holds no *Agent: the handlers read and change the agent through the
// narrow interfaces Config names (Agent, Local, Members, Operator), and
// reach the catalog through the servers' methods (node/server) invoked on
// an rpc.Caller. Each file declares its routes beside their handlers.
package httpapi
