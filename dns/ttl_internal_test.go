package dns

import (
	"testing"
	"time"
)

func TestServiceTTLsLookup(t *testing.T) {
	table := newServiceTTLs(5*time.Second, map[string]time.Duration{
		"Web":   30 * time.Second,
		"web*":  20 * time.Second,
		"we*":   10 * time.Second,
		"w*":    9 * time.Second,
		"db":    0,
		"api-*": 3 * time.Second,
	})
	tests := map[string]uint32{
		"web":     30, // exact beats every prefix
		"webapp":  20, // longest prefix
		"wet":     10,
		"w":       9,
		"db":      0, // an exact 0 is not "unset"
		"dbx":     5, // default
		"api-v1":  3,
		"api":     5,
		"unknown": 5,
	}
	for name, want := range tests {
		if got := table.lookup(name); got != want {
			t.Errorf("lookup(%q) = %d, want %d", name, got, want)
		}
	}

	star := newServiceTTLs(5*time.Second, map[string]time.Duration{"*": time.Minute, "db": time.Second})
	if got := star.lookup("anything"); got != 60 {
		t.Errorf(`"*": lookup(anything) = %d, want 60`, got)
	}
	if got := star.lookup("db"); got != 1 {
		t.Errorf(`"*": lookup(db) = %d, want 1`, got)
	}
	empty := newServiceTTLs(7*time.Second, nil)
	if got := empty.lookup("web"); got != 7 {
		t.Errorf("no overrides: lookup(web) = %d, want 7", got)
	}
}

func TestServiceTTLsLookupAllocs(t *testing.T) {
	table := newServiceTTLs(5*time.Second, map[string]time.Duration{"web": time.Second, "a*": time.Second, "b*": time.Second})
	if n := testing.AllocsPerRun(100, func() { table.lookup("bcd") }); n != 0 {
		t.Errorf("lookup allocates %v times", n)
	}
}
