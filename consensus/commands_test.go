package consensus

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

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
			for _, stamp := range []int64{0, 1_700_000_000_123_456_789} {
				buf, err := Encode(tt.t, stamp, tt.body)
				if err != nil {
					t.Fatal(err)
				}
				e, err := Decode(buf)
				if err != nil || e.Type != tt.t || e.Stamp != stamp || !reflect.DeepEqual(e.Body, tt.body) {
					t.Fatalf("Decode(stamp %d) = %+v %v", stamp, e, err)
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for name, buf := range map[string][]byte{
		"empty":          nil,
		"garbage body":   {byte(RegisterType), 0xc1},
		"stamp cut":      {byte(RegisterType | StampedFlag), 0, 0, 1},
		"zero stamp":     {byte(RegisterType | StampedFlag), 0, 0, 0, 0, 0, 0, 0, 0, 0x80},
		"negative stamp": {byte(RegisterType | StampedFlag), 0xff, 0, 0, 0, 0, 0, 0, 0, 0x80},
	} {
		if _, err := Decode(buf); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Decode([]byte{33}); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := Decode([]byte{33 | byte(StampedFlag), 0, 0, 0, 0, 0, 0, 0, 1}); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown stamped: %v", err)
	}
}

func TestFSMUnknownCommands(t *testing.T) {
	f := NewFSM(catalog.NewStore(), testLogger(t))
	if got := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{byte(IgnoreUnknownTypeFlag | 33)}}); got != nil {
		t.Fatalf("ignorable unknown command returned %v", got)
	}
	if f.AppliedIndex() != 1 {
		t.Fatalf("applied index %d after a skipped command, want 1", f.AppliedIndex())
	}
	got := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte{33}})
	if err, _ := got.(error); !errors.Is(err, ErrHalted) {
		t.Fatalf("an unknown command without the ignore flag returned %v, want ErrHalted", got)
	}
	// Halted: nothing after it is applied, no snapshot is taken.
	reg, _ := Encode(RegisterType, 0, &catalog.RegisterRequest{Node: "n1", Address: "10.0.0.1"})
	if got, _ := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: reg}).(error); !errors.Is(got, ErrHalted) {
		t.Fatalf("after the halt an entry returned %v", got)
	}
	if _, n, _ := f.store.Nodes(nil); len(n) != 0 {
		t.Fatalf("a halted FSM applied an entry: %v", n)
	}
	if f.AppliedIndex() != 1 {
		t.Fatalf("applied index %d, want 1: the FSM stopped before entry 2", f.AppliedIndex())
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
		t.Fatalf("a halted FSM took a snapshot: %v", err)
	}
	if err := f.Halted(); !errors.Is(err, ErrHalted) || !strings.Contains(err.Error(), "index 2") {
		t.Fatalf("Halted() = %v", err)
	}
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
		{AutopilotConfigType, &catalog.AutopilotConfigRequest{Config: catalog.AutopilotConfig{LastContactThreshold: time.Second}, CAS: true, Index: 3}},
	} {
		buf, _ := Encode(body.t, 0, body.b)
		f.Add(buf)
		buf, _ = Encode(body.t, 1_700_000_000_000_000_000, body.b)
		f.Add(buf)
	}
	f.Add([]byte{})
	f.Add([]byte{byte(IgnoreUnknownTypeFlag | 7)})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		// What decodes must apply without panicking: the FSM refuses bad
		// bodies with an error, the same on every replica.
		f := NewFSM(catalog.NewStore(), testLogger(t))
		_ = f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		if _, err := Encode(e.Type, e.Stamp, e.Body); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
