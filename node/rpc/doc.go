// Package rpc is the internal RPC between agents and servers: net/rpc with
// a msgpack codec, spoken on the server port after the first byte
// ConnByte, and a pool of connections on the calling side. It holds the
// wire types too; the endpoints live in package node.
package rpc
