// Package rpc is the internal RPC between agents and servers, spoken on
// the server port after the first byte ConnByte: msgpack framing (the
// layout net/rpc's codec used, so older builds still talk to this one), a
// dispatcher of typed methods (Server, Declare, Method), error codes that
// carry sentinel errors across the wire (Codes), and a pool of
// multiplexed connections on the calling side (Pool). It holds the wire
// types too; the methods are declared and answered in package
// node/server.
package rpc
