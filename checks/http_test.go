package checks

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// codeServer answers each request with the next code of its queue, or
// 599 once the queue is empty (a run the test did not expect).
type codeServer struct {
	*httptest.Server
	mu       sync.Mutex
	queue    []int
	requests int
}

func newCodeServer(t *testing.T) *codeServer {
	s := &codeServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		code := 599
		if len(s.queue) > 0 {
			code, s.queue = s.queue[0], s.queue[1:]
		}
		s.mu.Unlock()
		w.WriteHeader(code)
		fmt.Fprintf(w, "code %d", code)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve queues codes and returns the request count so far.
func (s *codeServer) serve(codes ...int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue[:0], codes...)
	return s.requests
}

func (s *codeServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// TestHTTPThresholds pins down the thresholds and the immediate retry:
// each step is one scheduled run, whose codes are the answers to it and
// to its immediate retry (so len(codes) is also how many requests the
// step must make), and want the statuses reported during the step.
func TestHTTPThresholds(t *testing.T) {
	const (
		P = StatusPassing
		W = StatusWarning
		C = StatusCritical
	)
	type step struct {
		codes []int
		want  []string
	}
	for _, tc := range []struct {
		name       string
		fbc, sbp   int
		steps      []step
		wantStatus string
	}{
		{name: "defaults", steps: []step{
			{[]int{200}, []string{P}},
			{[]int{500, 500}, []string{C}}, // critical after the immediate retry
			{[]int{200}, []string{P}},
			{[]int{500, 200}, nil}, // a blip: the retry passes, nothing to report
			{[]int{503, 200}, nil}, // and again: each streak has its retry
			{[]int{429}, []string{W}},
			{[]int{500, 500}, []string{C}},
			{[]int{404}, []string{C}}, // the streak goes on: no retry; same status, new output
			{[]int{200}, []string{P}},
		}},
		{name: "warning resets the failure count", steps: []step{
			{[]int{200}, []string{P}},
			{[]int{500, 429}, []string{W}},
			{[]int{500, 500}, []string{C}},
			{[]int{429}, []string{W}},
			{[]int{200}, []string{P}},
		}},
		{name: "failures before critical 1", fbc: 1, steps: []step{
			{[]int{200}, []string{P}},
			{[]int{500}, []string{C}}, // no retry: critical at once
			{[]int{200}, []string{P}},
		}},
		{name: "failures before critical 3", fbc: 3, steps: []step{
			{[]int{200}, []string{P}},
			{[]int{500, 500}, nil}, // one retry, then the interval
			{[]int{500}, []string{C}},
			{[]int{200}, []string{P}},
			{[]int{500, 500}, nil},
			{[]int{200}, nil}, // a pass ends the streak
			{[]int{500, 500}, nil},
			{[]int{500}, []string{C}},
		}},
		{name: "success before passing 3", sbp: 3, steps: []step{
			{[]int{200}, nil}, // starts critical
			{[]int{200}, nil},
			{[]int{200}, []string{P}},
			{[]int{500, 500}, []string{C}},
			{[]int{200}, nil},
			{[]int{500, 200}, nil}, // the failure resets the success count...
			{[]int{200}, nil},
			{[]int{200}, []string{P}}, // ...so three more
		}},
		{name: "warning is reported at once even before passing", sbp: 2, steps: []step{
			{[]int{429}, []string{W}},
			{[]int{200}, nil},
			{[]int{200}, []string{P}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newCodeServer(t)
			h := newHarness(t, nil)
			h.add(Definition{ID: "web", HTTP: srv.URL + "/health", Interval: 10 * time.Second,
				FailuresBeforeCritical: tc.fbc, SuccessBeforePassing: tc.sbp}, "")
			for i, st := range tc.steps {
				before, updates := srv.serve(st.codes...), h.rec.count()
				h.step()
				if got := srv.count() - before; got != len(st.codes) {
					t.Fatalf("step %d %v: %d requests, want %d", i, st.codes, got, len(st.codes))
				}
				if got := h.rec.statuses(updates); !slices.Equal(got, st.want) {
					t.Fatalf("step %d %v: reported %v, want %v (all: %v)", i, st.codes, got, st.want, h.rec.all())
				}
			}
		})
	}
}

// TestHTTPSchedule checks the timing on the fake clock: a first run
// within one interval, then one interval after each run.
func TestHTTPSchedule(t *testing.T) {
	srv := newCodeServer(t)
	h := newHarness(t, nil)
	const interval = 10 * time.Second
	h.add(Definition{ID: "web", HTTP: srv.URL, Interval: interval}, "")
	h.clock.waitPending(t, 1)
	first := h.clock.Deadlines()[0]
	if first < 0 || first >= interval {
		t.Fatalf("first run in %s, want within [0, %s)", first, interval)
	}
	for i := range 3 {
		srv.serve(200)
		h.step()
		if d := h.clock.Deadlines(); len(d) != 1 || d[0] != interval {
			t.Fatalf("after run %d the next is in %v, want %s", i, d, interval)
		}
	}
	// A failure retried at once still waits one interval after the retry.
	srv.serve(500, 500)
	h.step()
	if d := h.clock.Deadlines(); len(d) != 1 || d[0] != interval {
		t.Fatalf("after a retry the next run is in %v, want %s", d, interval)
	}
}

// TestHTTPRequest checks what the check sends and what it reports.
func TestHTTPRequest(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %s host=%s ua=%s x=%v body=%s",
			r.Method, r.URL.Path, r.Host, r.UserAgent(), r.Header["X-Token"], body))
		mu.Unlock()
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, strings.Repeat("é", 100000)) // two bytes each
		default:
			io.WriteString(w, "all good")
		}
	}))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name       string
		def        Definition
		wantReq    string
		wantOutput string
	}{
		{
			name:       "defaults",
			def:        Definition{HTTP: srv.URL + "/health"},
			wantReq:    "GET /health host=" + srv.Listener.Addr().String() + " ua=Consul Health Check x=[] body=",
			wantOutput: "HTTP GET " + srv.URL + "/health: 200 OK Output: all good",
		},
		{
			name: "method, headers, body and host",
			def: Definition{HTTP: srv.URL + "/h", Method: "PUT", Body: `{"a":1}`,
				Header: map[string][]string{"X-Token": {"a", "b"}, "Host": {"svc.example"}, "User-Agent": {"me"}}},
			wantReq:    `PUT /h host=svc.example ua=me x=[a b] body={"a":1}`,
			wantOutput: "HTTP PUT " + srv.URL + "/h: 200 OK Output: all good",
		},
		{
			name:       "body cut to OutputMaxSize, not inside a character",
			def:        Definition{HTTP: srv.URL + "/big", OutputMaxSize: 11},
			wantReq:    "GET /big host=" + srv.Listener.Addr().String() + " ua=Consul Health Check x=[] body=",
			wantOutput: "HTTP GET " + srv.URL + "/big: 200 OK Output: " + strings.Repeat("é", 5),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			h := newHarness(t, nil)
			tc.def.ID, tc.def.Interval = "web", time.Minute
			h.add(tc.def, "")
			h.step()
			u := h.rec.last()
			if u.status != StatusPassing || u.output != tc.wantOutput {
				t.Errorf("reported %s: %q, want passing: %q", u.status, u.output, tc.wantOutput)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != tc.wantReq {
				t.Errorf("requests %q, want [%q]", got, tc.wantReq)
			}
		})
	}
}

func TestHTTPTLSAndRedirects(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/here", http.StatusFound)
		case "/elsewhere":
			http.Redirect(w, r, tlsSrv.URL+"/there", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/here":
			io.WriteString(w, "here")
		}
	}))
	t.Cleanup(plain.Close)

	for _, tc := range []struct {
		name       string
		def        Definition
		wantStatus string
		wantOutput string // a substring
	}{
		{"TLS verified against the system roots fails", Definition{HTTP: tlsSrv.URL}, StatusCritical, "certificate"},
		{"TLSSkipVerify", Definition{HTTP: tlsSrv.URL, TLSSkipVerify: true}, StatusPassing, "200 OK Output: secure"},
		{"redirect followed", Definition{HTTP: plain.URL + "/moved"}, StatusPassing, "200 OK Output: here"},
		{"redirect to another host followed", Definition{HTTP: plain.URL + "/elsewhere", TLSSkipVerify: true}, StatusPassing, "Output: secure"},
		{"redirect loop", Definition{HTTP: plain.URL + "/loop"}, StatusCritical, "stopped after 10 redirects"},
		{"connection refused", Definition{HTTP: "http://" + closedAddr(t)}, StatusCritical, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			tc.def.ID, tc.def.Interval = "web", time.Minute
			h.add(tc.def, StatusWarning)
			h.step()
			u := h.rec.last()
			if u.status != tc.wantStatus || !strings.Contains(u.output, tc.wantOutput) {
				t.Fatalf("reported %s: %q, want %s with %q", u.status, u.output, tc.wantStatus, tc.wantOutput)
			}
		})
	}
}

// TestHTTPTimeout: a handler that hangs makes the check critical after
// the run and its immediate retry, each cut at the timeout.
func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	aborted := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			mu.Lock()
			aborted++
			mu.Unlock()
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	h := newHarness(t, nil)
	const timeout = 200 * time.Millisecond
	h.add(Definition{ID: "slow", HTTP: srv.URL, Interval: time.Minute, Timeout: timeout}, StatusPassing)
	start := time.Now()
	h.step()
	took := time.Since(start)
	t.Logf("run + immediate retry against a hung server took %s (timeout %s)", took, timeout)
	u := h.rec.last()
	if u.status != StatusCritical || !strings.Contains(u.output, "Timed out (200ms)") {
		t.Fatalf("reported %s: %q, want critical with a timeout", u.status, u.output)
	}
	if took < 2*timeout {
		t.Fatalf("critical after %s, before two timeouts of %s", took, timeout)
	}
	if took > 10*time.Second {
		t.Fatalf("critical after %s, far more than two timeouts of %s", took, timeout)
	}
	if len(h.rec.all()) != 1 {
		t.Fatalf("updates %v, want one critical", h.rec.all())
	}
	testkit.Eventually(t, waitTimeout, "the server to see both requests aborted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return aborted == 2
	})
}

// TestHTTPHoldsNoSocket: keep-alives are off, so no connection stays open
// between runs.
func TestHTTPHoldsNoSocket(t *testing.T) {
	var mu sync.Mutex
	open := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch st {
		case http.StateNew:
			open++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	h := newHarness(t, nil)
	for i := range 20 {
		h.add(Definition{ID: fmt.Sprint("web", i), HTTP: srv.URL, Interval: time.Minute}, "")
	}
	h.clock.waitPending(t, 20)
	h.clock.Advance(time.Minute)
	testkit.Eventually(t, waitTimeout, "20 passing checks", func() bool { return h.rec.count() == 20 })
	testkit.Eventually(t, waitTimeout, "the server to see every connection closed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return open == 0
	})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
