// Package catalog holds the registry state of one datacenter: nodes, service
// instances and checks, each row stamped with the Raft index that created and
// last modified it.
//
// The state lives in go-memdb (immutable radix trees), so readers never block
// writers and every read sees one consistent version. Reads take a
// memdb.WatchSet that the caller can wait on to implement blocking queries;
// every query adds the store's abandon channel, which closes when a snapshot
// restore replaces the whole state, so no blocked reader hangs on a tree that
// no longer exists.
//
// The package is pure data: no network, no goroutines of its own. Writes come
// from the Raft FSM in package consensus, which supplies the index.
package catalog
