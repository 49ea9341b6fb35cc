package rpc

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// controlUserTimeout sets TCP_USER_TIMEOUT on a connection being dialled:
// data sent and not acknowledged for d ends the connection. Keepalive
// probes only run while nothing is in flight; a request written just as
// the link was cut would otherwise be retransmitted for some fifteen
// minutes (tcp_retries2) while its call, a blocking query, waits.
func controlUserTimeout(d time.Duration) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond))
		})
		if err != nil {
			return err
		}
		return serr
	}
}
