//go:build !linux

package rpc

import (
	"syscall"
	"time"
)

// controlUserTimeout is a no-op where TCP_USER_TIMEOUT does not exist;
// keepalive probes still end idle connections to a silent server.
func controlUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
