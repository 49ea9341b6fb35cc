package checks

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listen accepts and closes connections on addr ("127.0.0.1:0" for any
// port) until the test ends or the listener is closed, counting them.
func listen(t *testing.T, addr string) (net.Listener, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l, &n
}

// TestTCPCloseReopen runs on the wall clock with a short interval: the
// check goes critical when the listener closes and passing when it comes
// back on the same port.
func TestTCPCloseReopen(t *testing.T) {
	l, _ := listen(t, "127.0.0.1:0")
	addr := l.Addr().String()
	rec := &recorder{}
	r, err := NewRunner(Config{Notifier: rec, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(t.Context()) })
	if err := r.Add(Definition{ID: "db", TCP: addr, Interval: 20 * time.Millisecond, Timeout: time.Second}, ""); err != nil {
		t.Fatal(err)
	}

	u := rec.waitStatus(t, "db", StatusPassing)
	if want := "TCP connect " + addr + ": Success"; u.output != want {
		t.Fatalf("output %q, want %q", u.output, want)
	}
	l.Close()
	start := time.Now()
	u = rec.waitStatus(t, "db", StatusCritical)
	t.Logf("critical %s after the listener closed: %s", time.Since(start), u.output)
	if !strings.Contains(u.output, "refused") {
		t.Fatalf("output %q, want connection refused", u.output)
	}
	listen(t, addr)
	start = time.Now()
	rec.waitStatus(t, "db", StatusPassing)
	t.Logf("passing %s after the listener came back", time.Since(start))

	// passing, critical, passing: nothing in between.
	var got []string
	for _, u := range rec.all() {
		got = append(got, u.status)
	}
	if strings.Join(got, ",") != "passing,critical,passing" {
		t.Fatalf("reported %v", got)
	}
}
