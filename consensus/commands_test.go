package consensus

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/meshd/meshd/catalog"
)

func TestCommandRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		t    MessageType
		body any
	}{
		{"register", RegisterType, &catalog.RegisterRequest{Node: "n", Service: &catalog.Service{Service: "web", Tags: []string{"a"}, Port: 1}}},
		{"deregister", DeregisterType, &catalog.DeregisterRequest{Node: "n", ServiceID: "web"}},
		{"check", CheckUpdateType, &catalog.CheckStatusUpdate{Node: "n", CheckID: "c", Status: "passing", Output: "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf, err := Encode(tt.t, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			typ, body, err := Decode(buf)
			if err != nil || typ != tt.t || !reflect.DeepEqual(body, tt.body) {
				t.Fatalf("Decode = %v %+v %v", typ, body, err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	if _, _, err := Decode(nil); !errors.Is(err, ErrMalformedCommand) {
		t.Fatalf("empty: %v", err)
	}
	if _, _, err := Decode([]byte{byte(RegisterType), 0xc1}); !errors.Is(err, ErrMalformedCommand) {
		t.Fatalf("garbage body: %v", err)
	}
	if _, _, err := Decode([]byte{99}); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestFSMUnknownCommands(t *testing.T) {
	f := NewFSM(catalog.NewStore(), testLogger(t))
	if got := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{byte(IgnoreUnknownTypeFlag | 99)}}); got != nil {
		t.Fatalf("ignorable unknown command returned %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an unknown command without the ignore flag did not stop the replica")
		}
	}()
	f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte{99}})
}

func FuzzDecode(f *testing.F) {
	for _, body := range []struct {
		t MessageType
		b any
	}{
		{RegisterType, &catalog.RegisterRequest{Node: "n", Service: &catalog.Service{Service: "web"}, Checks: []*catalog.Check{{CheckID: "c"}}}},
		{DeregisterType, &catalog.DeregisterRequest{Node: "n"}},
		{CheckUpdateType, &catalog.CheckStatusUpdate{Node: "n", CheckID: "c", Status: "critical"}},
		{PreparedQueryType | IgnoreUnknownTypeFlag, &catalog.PreparedQueryRequest{Op: catalog.QuerySet,
			Query: &catalog.PreparedQuery{ID: "q", Name: "web", Service: catalog.ServiceQuery{Service: "web", Failover: catalog.QueryFailover{NearestN: 1}}}}},
	} {
		buf, _ := Encode(body.t, body.b)
		f.Add(buf)
	}
	f.Add([]byte{})
	f.Add([]byte{byte(IgnoreUnknownTypeFlag | 7)})
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, body, err := Decode(data)
		if err != nil {
			return
		}
		// What decodes must apply without panicking: the FSM refuses bad
		// bodies with an error, the same on every replica.
		f := NewFSM(catalog.NewStore(), testLogger(t))
		_ = f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		if _, err := Encode(typ, body); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
