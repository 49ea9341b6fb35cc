// Package consensus runs the Raft group of a datacenter's servers and applies
// its committed log to the catalog.
//
// Every catalog write is a command: one type byte, whose high bit says a
// replica that does not know the type may skip it, then the msgpack body.
// Commands are applied in log order by the FSM, so every server's catalog
// goes through the same states. Logs live in raft-wal and snapshots in files
// under the data dir, or both in memory for -dev.
package consensus
