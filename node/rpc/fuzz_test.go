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
