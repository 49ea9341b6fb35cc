package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/nodetest"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// The server port answers the internal RPC: writes, blocking reads and
// errors that keep their meaning.
func TestServerRPC(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	p := rpc.NewPool(5*time.Second, rpc.Hello{Node: "test"}, server.Codes)
	defer p.Close()
	ctx := context.Background()
	addr := a.ServerAddr()

	var w rpc.WriteResponse
	reg := &catalog.RegisterRequest{Node: "ext", Address: "10.0.0.1",
		Service: &catalog.Service{ID: "db-1", Service: "db", Port: 5432}}
	if err := p.Call(ctx, addr, "Catalog.Register", reg, &w); err != nil || w.Index == 0 {
		t.Fatalf("Catalog.Register = %d, %v", w.Index, err)
	}
	var res rpc.CheckServiceNodesResponse
	if err := p.Call(ctx, addr, "Health.ServiceNodes", &rpc.ServiceQuery{Service: "db"}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Nodes) != 1 || res.Nodes[0].Service.Port != 5432 || res.Index != w.Index || !res.KnownLeader {
		t.Fatalf("Health.ServiceNodes = %+v", res)
	}

	// A blocking read returns when its service changes.
	done := make(chan rpc.CheckServiceNodesResponse, 1)
	go func() {
		var r rpc.CheckServiceNodesResponse
		p.Call(ctx, addr, "Health.ServiceNodes", &rpc.ServiceQuery{Service: "db",
			QueryOptions: rpc.QueryOptions{MinIndex: res.Index, MaxWait: time.Minute}}, &r)
		done <- r
	}()
	reg.Service.Port = 5433
	if err := p.Call(ctx, addr, "Catalog.Register", reg, &w); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Index != w.Index || r.Nodes[0].Service.Port != 5433 {
			t.Fatalf("blocking read = %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking read over RPC never returned")
	}

	// A refused write is an answer with its meaning: invalid request.
	err := p.Call(ctx, addr, "Catalog.Register", &catalog.RegisterRequest{Node: "ext", Service: &catalog.Service{Port: 1}}, &w)
	var re *rpc.RemoteError
	if !errors.As(err, &re) || rpc.IsTransportError(err) {
		t.Fatalf("refused write = %v", err)
	}
}

// TestServerLimits holds one client to limits.rpc_rate_per_client and
// max_blocking_queries_per_client, over RPC and HTTP, with 429s that say
// why, while other clients and forwarding servers go on; the refusals
// show in the metrics.
func TestServerLimits(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{Edit: func(f *config.File) {
		rate, burst, blocking := 20, 10, 2
		f.Limits.RPCRatePerClient, f.Limits.RPCBurstPerClient, f.Limits.MaxBlockingQueriesPerClient = &rate, &burst, &blocking
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := a.ServerAddr()
	pool := func(h rpc.Hello) *rpc.Pool {
		p := rpc.NewPool(5*time.Second, h, server.Codes)
		t.Cleanup(func() { p.Close() })
		return p
	}
	noisy, quiet, server := pool(rpc.Hello{Node: "noisy"}), pool(rpc.Hello{Node: "quiet"}), pool(rpc.Hello{Node: "server9", Server: true})
	var res rpc.CheckServiceNodesResponse
	if err := quiet.Call(ctx, addr, "Health.ServiceNodes", &rpc.ServiceQuery{Service: "db"}, &res); err != nil {
		t.Fatal(err)
	}
	block := func(p *rpc.Pool) <-chan error {
		ch := make(chan error, 1)
		go func() {
			var r rpc.CheckServiceNodesResponse
			ch <- p.Call(ctx, addr, "Health.ServiceNodes", &rpc.ServiceQuery{Service: "db",
				QueryOptions: rpc.QueryOptions{MinIndex: res.Index, MaxWait: time.Minute}}, &r)
		}()
		return ch
	}

	// Blocking: two held open, the third refused at once.
	held := []<-chan error{block(noisy), block(noisy)}
	testkit.Eventually(t, 10*time.Second, "two blocking queries held", func() bool {
		return strings.Contains(metricsText(t, a), `meshd_rpc_client_blocking_queries{client="noisy"} 2`)
	})
	select {
	case err := <-block(noisy):
		var re *rpc.RemoteError
		if !errors.As(err, &re) || !strings.HasPrefix(re.Msg, "too many concurrent blocking queries: noisy holds 2 open") {
			t.Fatalf("a third blocking query = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocking query past the limit was held")
	}
	// Another client's blocking query is taken.
	held = append(held, block(quiet))
	testkit.Eventually(t, 10*time.Second, "the other client's blocking query held", func() bool {
		return strings.Contains(metricsText(t, a), `meshd_rpc_client_blocking_queries{client="quiet"} 1`)
	})
	for _, ch := range held {
		select {
		case err := <-ch:
			t.Fatalf("a held blocking query returned: %v", err)
		default:
		}
	}

	// Rate: past the burst, calls are refused until tokens come back; a
	// forwarding server is never refused.
	refused := 0
	for range 100 {
		err := noisy.Call(ctx, addr, "Health.ServiceNodes", &rpc.ServiceQuery{Service: "db"}, &res)
		var re *rpc.RemoteError
		switch {
		case err == nil:
		case errors.As(err, &re) && strings.HasPrefix(re.Msg, "rate limit exceeded: noisy sent more than 20 RPCs/s"):
			refused++
		default:
			t.Fatalf("call: %v", err)
		}
	}
	if refused == 0 {
		t.Fatal("100 calls at once, burst 10: none refused")
	}
	for i := range 40 {
		if err := server.Call(ctx, addr, "Health.ServiceNodes", &rpc.ServiceQuery{Service: "db"}, &res); err != nil {
			t.Fatalf("forwarded call %d: %v", i, err)
		}
	}
	t.Logf("100 calls at once past a burst of 10: %d refused", refused)

	// HTTP: blocking queries from one address, the third a 429.
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	url := a.HTTP + "/v1/health/service/db?wait=1m&index=" + strconv.FormatUint(res.Index, 10)
	for range 2 {
		go func() {
			req, _ := http.NewRequestWithContext(hctx, "GET", url, nil)
			if r, err := http.DefaultClient.Do(req); err == nil {
				r.Body.Close()
			}
		}()
	}
	testkit.Eventually(t, 10*time.Second, "two HTTP blocking queries held", func() bool {
		return strings.Contains(metricsText(t, a), `meshd_rpc_client_blocking_queries{client="127.0.0.1"} 2`)
	})
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "max_blocking_queries_per_client") {
		t.Fatalf("third HTTP blocking query: %d %s", r.StatusCode, body)
	}
	hcancel()
	testkit.Eventually(t, 10*time.Second, "the HTTP slots released", func() bool {
		return strings.Contains(metricsText(t, a), `meshd_rpc_client_blocking_queries{client="127.0.0.1"} 0`)
	})

	m := metricsText(t, a)
	for _, want := range []string{
		`meshd_rpc_client_refused_total{client="noisy",limit="blocking"} 1`,
		`meshd_rpc_client_refused_total{client="noisy",limit="rate"} ` + strconv.Itoa(refused),
		`meshd_rpc_client_refused_total{client="127.0.0.1",limit="blocking"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(m)
	}
	// Consul's JSON shape, for its clients.
	var summary struct{ Counters []struct{ Name string } }
	if err := getJSON(a.HTTP+"/v1/agent/metrics", &summary); err != nil || len(summary.Counters) == 0 {
		t.Fatalf("agent/metrics JSON: %d counters, %v", len(summary.Counters), err)
	}
}

func metricsText(t *testing.T, a *nodetest.Agent) string {
	t.Helper()
	r, err := http.Get(a.HTTP + "/v1/agent/metrics?format=prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func getJSON(url string, out any) error {
	r, err := http.Get(url)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	return json.NewDecoder(r.Body).Decode(out)
}
