package consensus

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RaftConnByte is the first byte a Raft connection sends on the server
// port, so one listener can carry Raft and the agents' RPC.
const RaftConnByte byte = 0x01

var errLayerClosed = errors.New("raft stream layer closed")

// streamLayer is a raft.StreamLayer fed by the server port's multiplexer:
// the node accepts connections, reads the first byte, and hands Raft ones
// here. Dial writes the byte itself.
type streamLayer struct {
	addr      net.Addr
	connCh    chan net.Conn
	closeOnce sync.Once
	closeCh   chan struct{}
}

func newStreamLayer(advertise net.Addr) *streamLayer {
	return &streamLayer{addr: advertise, connCh: make(chan net.Conn), closeCh: make(chan struct{})}
}

// handoff gives an accepted connection, its first byte already read, to
// Raft. It closes the connection if the layer is closed.
func (l *streamLayer) handoff(c net.Conn) {
	select {
	case l.connCh <- c:
	case <-l.closeCh:
		c.Close()
	}
}

func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.connCh:
		return c, nil
	case <-l.closeCh:
		return nil, errLayerClosed
	}
}

func (l *streamLayer) Close() error {
	l.closeOnce.Do(func() { close(l.closeCh) })
	return nil
}

func (l *streamLayer) Addr() net.Addr { return l.addr }

func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{RaftConnByte}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}
