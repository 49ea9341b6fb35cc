package rpc

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// byteConn is a connection that reads the given bytes, then EOF, and
// throws away what is written.
type byteConn struct{ r *bytes.Reader }

func (c byteConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c byteConn) Write(p []byte) (int, error) { return len(p), nil }
func (c byteConn) Close() error                { return nil }

// FuzzServerConn feeds a server connection arbitrary bytes after the
// connection byte: the hello, headers and bodies are all read from the
// network. It must end (at EOF) without a panic, however they are cut.
func FuzzServerConn(f *testing.F) {
	var seed bytes.Buffer
	enc := msgpack.NewEncoder(&seed)
	enc.Encode(&Hello{Node: "client1"})
	enc.Encode(&header{ServiceMethod: "Echo.Say", Seq: 1, Budget: 1e9})
	enc.Encode(&EchoArgs{Text: "hi"})
	enc.Encode(&header{ServiceMethod: "Echo.Nope", Seq: 2})
	enc.Encode(&EchoArgs{Text: "x"})
	enc.Encode(&header{ServiceMethod: "Echo.Say", Seq: 3})
	enc.Encode(&EchoArgs{Text: "fail"})
	enc.Encode(&header{ServiceMethod: "Echo.Say", Seq: 4})
	enc.Encode("not the args")
	f.Add(seed.Bytes())
	f.Add(seed.Bytes()[:seed.Len()/2])
	f.Add([]byte{0xc1})
	f.Add([]byte{})

	srv := NewServer(ServerConfig{Codes: testCodes})
	release := make(chan struct{})
	close(release) // a call asking to block does not
	echoSurface.Bind(srv, &Echo{release: release})
	admit := func(method string, args any) (func(), error) { return func() {}, nil }
	f.Fuzz(func(t *testing.T, b []byte) {
		srv.ServeConn(t.Context(), byteConn{bytes.NewReader(b)}, func(Hello) Admit { return admit })
	})
}

// FuzzClientConn feeds the calling side of a connection arbitrary bytes
// as the server's answers, with calls waiting on them: headers and
// bodies are read from the network there too. The read loop must end (at
// EOF) without a panic, and every waiting call must get an answer or an
// error.
func FuzzClientConn(f *testing.F) {
	var seed bytes.Buffer
	enc := msgpack.NewEncoder(&seed)
	enc.Encode(&header{ServiceMethod: "Echo.Say", Seq: 1})
	enc.Encode(&EchoReply{Text: "hi"})
	enc.Encode(&header{ServiceMethod: "Echo.Say", Seq: 2, Error: "invalid request: x", Code: "invalid"})
	enc.Encode(struct{}{})
	enc.Encode(&header{ServiceMethod: "Echo.Say", Seq: 9})
	enc.Encode(&EchoReply{Text: "nobody waits"})
	enc.Encode(&header{ServiceMethod: "Echo.Say", Seq: 3})
	enc.Encode("not the reply")
	f.Add(seed.Bytes())
	f.Add(seed.Bytes()[:seed.Len()/2])
	f.Add([]byte{0xc1})
	f.Fuzz(func(t *testing.T, b []byte) {
		cc := &clientConn{c: newCodec(byteConn{bytes.NewReader(b)}), codes: testCodes, pending: make(map[uint64]*pendingCall)}
		var calls []*pendingCall
		for seq := uint64(1); seq <= 3; seq++ {
			call := &pendingCall{seq: seq, resp: new(EchoReply), done: make(chan error, 1)}
			cc.pending[seq] = call
			calls = append(calls, call)
		}
		cc.readLoop()
		for _, call := range calls {
			select {
			case <-call.done:
			default:
				t.Fatalf("call %d got no answer after the connection ended", call.seq)
			}
		}
	})
}
