package rpc

import (
	"context"
	"fmt"
)

// Caller sends a call of method with req and fills resp with the answer:
// a *Pool's server selection on a client agent, a *Server in-process on a
// server agent. req and resp are pointers to the method's types.
type Caller interface {
	Call(ctx context.Context, method string, req, resp any) error
}

// Method is one RPC method: its wire name and the types of its request
// and answer. Declare makes one; Call invokes it through any Caller, so a
// server and a client agent make the same call.
type Method[Req, Resp any] struct{ name string }

// Name is the method's wire name, "Endpoint.Method".
func (m Method[Req, Resp]) Name() string { return m.name }

// Call invokes m through c. The answer is never nil; with an error it
// holds what the server filled in before failing, if anything.
func (m Method[Req, Resp]) Call(ctx context.Context, c Caller, req *Req) (*Resp, error) {
	resp := new(Resp)
	err := c.Call(ctx, m.name, req, resp)
	return resp, err
}

// methodKey is the context key under which a call's method name travels.
type methodKey struct{}

// MethodOf is the name of the method whose call ctx belongs to ("" outside
// one): a handler that passes its call on to another server (forwarding
// to the leader or another datacenter) sends the same method.
func MethodOf(ctx context.Context) string {
	name, _ := ctx.Value(methodKey{}).(string)
	return name
}

// Surface is the set of methods a server of type S offers, each declared
// once with Declare beside the method of S that answers it. Bind serves
// them all. Declarations happen at package initialisation; a Surface is
// read-only afterwards.
type Surface[S any] struct {
	entries []entry[S]
}

// entry is one declared method: its name and how to build its handler
// for a given S.
type entry[S any] struct {
	name string
	bind func(S) handler
}

// Declare adds the method name to sf, answered by fn on the S it is
// bound to, and returns it for callers. It panics if name is declared
// twice (a programmer's error, found when the package loads).
func Declare[S, Req, Resp any](sf *Surface[S], name string, fn func(S, context.Context, *Req) (*Resp, error)) Method[Req, Resp] {
	for _, e := range sf.entries {
		if e.name == name {
			panic(fmt.Sprintf("rpc: method %s declared twice", name))
		}
	}
	sf.entries = append(sf.entries, entry[S]{name: name, bind: func(s S) handler {
		return handler{
			newReq: func() any { return new(Req) },
			serve: func(ctx context.Context, req any) (any, error) {
				out, err := fn(s, context.WithValue(ctx, methodKey{}, name), req.(*Req))
				if out == nil {
					out = new(Resp)
				}
				return out, err
			},
			fill: func(dst, src any) { *dst.(*Resp) = *src.(*Resp) },
		}
	}})
	return Method[Req, Resp]{name: name}
}

// Bind registers every method of sf on srv, answered by s.
func (sf *Surface[S]) Bind(srv *Server, s S) {
	for _, e := range sf.entries {
		srv.handle(e.name, e.bind(s))
	}
}
