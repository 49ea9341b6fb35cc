package checks

import (
	"context"
	"net"
)

// probeTCP connects to the check's address: a connection is passing
// ("TCP connect host:port: Success"), anything else critical with the
// error. The connection is closed at once.
func (c *check) probeTCP(ctx context.Context) (status, output string) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.def.TCP)
	if err != nil {
		return StatusCritical, timeoutNote(ctx, c.def.Timeout, err.Error())
	}
	conn.Close()
	return StatusPassing, "TCP connect " + c.def.TCP + ": Success"
}
