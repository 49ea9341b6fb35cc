package catalog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/go-memdb"
)

func setQuery(t *testing.T, s *Store, idx uint64, q *PreparedQuery) error {
	t.Helper()
	return s.ApplyPreparedQuery(idx, &PreparedQueryRequest{Op: QuerySet, Query: q})
}

func TestPreparedQueries(t *testing.T) {
	s := NewStore()
	q := &PreparedQuery{ID: "11111111-2222-3333-4444-555555555555", Name: "web-any",
		Service: ServiceQuery{Service: "web", Failover: QueryFailover{NearestN: 2}}}
	if err := setQuery(t, s, 10, q); err != nil {
		t.Fatal(err)
	}
	ws := memdb.NewWatchSet()
	idx, got, err := s.PreparedQuery(ws, "WEB-ANY")
	if err != nil || got == nil || got.ID != q.ID || idx != 10 || got.CreateIndex != 10 {
		t.Fatalf("by name: %v %+v %v", idx, got, err)
	}
	if _, got, _ := s.PreparedQuery(nil, q.ID); got == nil || got.Name != "web-any" {
		t.Fatalf("by ID: %+v", got)
	}
	// A second query may not take the name; nothing is written.
	other := &PreparedQuery{ID: "99999999-2222-3333-4444-555555555555", Name: "Web-Any", Service: ServiceQuery{Service: "db"}}
	if err := setQuery(t, s, 11, other); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, list, _ := s.PreparedQueries(nil); len(list) != 1 {
		t.Fatalf("list after a refused write: %d", len(list))
	}
	// An update keeps CreateIndex and wakes watchers.
	upd := *q
	upd.Service.OnlyPassing = true
	if err := setQuery(t, s, 12, &upd); err != nil {
		t.Fatal(err)
	}
	if !fired(ws) {
		t.Fatal("update did not wake the watcher")
	}
	_, got, _ = s.PreparedQuery(nil, q.ID)
	if got.CreateIndex != 10 || got.ModifyIndex != 12 || !got.Service.OnlyPassing {
		t.Fatalf("after update: %+v", got)
	}
	// Snapshots carry them.
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	r := NewStore()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := r.PreparedQuery(nil, "web-any"); got == nil || got.ModifyIndex != 12 {
		t.Fatalf("restored: %+v", got)
	}
	if err := s.ApplyPreparedQuery(13, &PreparedQueryRequest{Op: QueryDelete, Query: &PreparedQuery{ID: q.ID}}); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := s.PreparedQuery(nil, "web-any"); got != nil {
		t.Fatalf("deleted query still found: %+v", got)
	}
	if err := s.ApplyPreparedQuery(14, &PreparedQueryRequest{Op: QueryDelete, Query: &PreparedQuery{ID: q.ID}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of an unknown query: %v", err)
	}
}

func TestPreparedQueryValidate(t *testing.T) {
	for name, q := range map[string]PreparedQuery{
		"no service":       {},
		"dotted name":      {Name: "a.b", Service: ServiceQuery{Service: "web"}},
		"negative nearest": {Service: ServiceQuery{Service: "web", Failover: QueryFailover{NearestN: -1}}},
		"empty dc":         {Service: ServiceQuery{Service: "web", Failover: QueryFailover{Datacenters: []string{""}}}},
		"empty tag":        {Service: ServiceQuery{Service: "web", Tags: []string{"!"}}},
		"bad ttl":          {Service: ServiceQuery{Service: "web"}, DNS: QueryDNSOptions{TTL: "ten"}},
		"control char":     {Name: "a\x00", Service: ServiceQuery{Service: "web"}},
	} {
		if err := q.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", name, err)
		}
	}
}

func TestServiceQueryFilters(t *testing.T) {
	csn := CheckServiceNode{
		Node:    &Node{Node: "n1", Meta: map[string]string{"rack": "a"}},
		Service: &Service{ID: "web1", Service: "web", Tags: []string{"v2", "Primary"}, Meta: map[string]string{"tier": "1"}},
		Checks: []*Check{
			{CheckID: "serfHealth", Status: HealthPassing},
			{CheckID: "slow", Status: HealthWarning},
			{CheckID: "flaky", Status: HealthCritical},
		},
	}
	for _, tc := range []struct {
		q       ServiceQuery
		matches bool
		healthy bool
	}{
		{ServiceQuery{Tags: []string{"primary"}, IgnoreCheckIDs: []string{"flaky"}}, true, true},
		{ServiceQuery{Tags: []string{"!v2"}}, false, false},
		{ServiceQuery{Tags: []string{"!v1"}, NodeMeta: map[string]string{"rack": "a"}, ServiceMeta: map[string]string{"tier": "1"}}, true, false},
		{ServiceQuery{NodeMeta: map[string]string{"rack": "b"}}, false, false},
		{ServiceQuery{OnlyPassing: true, IgnoreCheckIDs: []string{"FLAKY"}}, true, false},
		{ServiceQuery{OnlyPassing: true, IgnoreCheckIDs: []string{"flaky", "slow"}}, true, true},
	} {
		if got := tc.q.Matches(csn); got != tc.matches {
			t.Errorf("%+v: Matches = %v", tc.q, got)
		}
		if got := tc.q.Healthy(csn); got != tc.healthy {
			t.Errorf("%+v: Healthy = %v", tc.q, got)
		}
	}
}
