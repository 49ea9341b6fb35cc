package jepsen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshd/meshd/scripts/internal/agentproc"
)

// Workload is what the clients do.
type Workload struct {
	// Servers are the HTTP base URLs the clients pick from, at random for
	// each operation.
	Servers []string
	// Clients run concurrently, one operation at a time each.
	Clients int
	// Keys is the number of registers in use at a time. Every KeyLife
	// (default 10 s) the clients move to fresh ones, as Jepsen's
	// independent keys do: each register's history stays short enough to
	// check quickly, however long the run.
	Keys    int
	KeyLife time.Duration
	// OpTimeout bounds one operation; a write that takes longer has an
	// unknown outcome.
	OpTimeout time.Duration
	// Pace is the pause between a client's operations (0: none).
	Pace time.Duration
}

// register is the catalog object behind key k: one instance of service
// reg-k on the external node jep-k, its Meta["v"] the register's value.
func registerBody(k int, v string) []byte {
	b, _ := json.Marshal(map[string]any{
		"Node": fmt.Sprintf("jep-%d", k), "Address": fmt.Sprintf("10.99.%d.%d", k/250, k%250+1),
		"Service": map[string]any{"ID": "reg", "Service": fmt.Sprintf("reg-%d", k), "Port": 1, "Meta": map[string]string{"v": v}},
	})
	return b
}

// Run runs w's clients until ctx ends, recording into h.
func Run(ctx context.Context, w Workload, h *History) {
	var wg sync.WaitGroup
	for c := range w.Clients {
		wg.Go(func() { runClient(ctx, w, h, c) })
	}
	wg.Wait()
}

func runClient(ctx context.Context, w Workload, h *History, client int) {
	hc := &http.Client{Timeout: w.OpTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	defer hc.CloseIdleConnections()
	life := w.KeyLife
	if life <= 0 {
		life = 10 * time.Second
	}
	for seq := 0; ctx.Err() == nil; seq++ {
		key := int(h.Now()/int64(life))*w.Keys + rand.N(w.Keys)
		server := w.Servers[rand.N(len(w.Servers))]
		var op Op
		switch r := rand.N(4); {
		case r < 2:
			op = write(ctx, hc, h, server, client, key, fmt.Sprintf("c%d-%d", client, seq))
		case r == 2:
			op = read(ctx, hc, h, server, client, key, ReadConsistent)
		default:
			op = read(ctx, hc, h, server, client, key, ReadDefault)
		}
		if op.Return == 0 {
			continue // a read that failed, or a write never sent, tells nothing
		}
		if ctx.Err() != nil && op.Kind != Write {
			continue
		}
		h.Add(op)
		if w.Pace > 0 {
			agentproc.SleepCtx(ctx, w.Pace)
		}
	}
}

func write(ctx context.Context, hc *http.Client, h *History, server string, client, key int, value string) Op {
	op := Op{Client: client, Key: key, Kind: Write, Value: value, Server: server, Call: h.Now()}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), "PUT", server+"/v1/catalog/register", bytes.NewReader(registerBody(key, value)))
	if err != nil {
		panic(err)
	}
	resp, err := hc.Do(req)
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return op // never sent: no effect (Return 0 drops it)
	}
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			op.Return = h.Now()
			return op
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			return op // refused before Raft: no effect
		}
		err = fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	// Timed out, refused or failed on the server: it may still take
	// effect, at any time after the call.
	op.Return, op.Err = Unknown, err.Error()
	return op
}

func read(ctx context.Context, hc *http.Client, h *History, server string, client, key int, kind Kind) Op {
	op := Op{Client: client, Key: key, Kind: kind, Server: server, Call: h.Now()}
	url := fmt.Sprintf("%s/v1/catalog/service/reg-%d", server, key)
	if kind == ReadConsistent {
		url += "?consistent"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		panic(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return op
	}
	defer resp.Body.Close()
	var out []struct{ ServiceMeta map[string]string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return op
	}
	op.Return = h.Now()
	op.Index, _ = strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	op.ServedBy = resp.Header.Get("X-Meshd-Server")
	op.Term, _ = strconv.ParseUint(resp.Header.Get("X-Meshd-Term"), 10, 64)
	if len(out) > 0 {
		op.Value = out[0].ServiceMeta["v"]
	}
	return op
}
