package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

func TestMembershipCommands(t *testing.T) {
	agents := nodetest.StartCluster(t, 1, 1)
	server, client := agents[0], agents[1]
	addr := "-http-addr=" + client.HTTPAddr()

	code, out, errOut := meshd(t, "members", addr)
	if code != 0 || !strings.Contains(out, "server1") || !strings.Contains(out, "client1") ||
		!strings.Contains(out, "alive") || !strings.Contains(out, "server") || !strings.Contains(out, "dc1") {
		t.Fatalf("members = %d %q %q", code, out, errOut)
	}
	if code, out, _ := meshd(t, "members", "-detailed", addr); code != 0 || !strings.Contains(out, "role=server") {
		t.Fatalf("members -detailed = %d %q", code, out)
	}
	if code, out, _ := meshd(t, "members", "-status", "failed", addr); code != 0 || strings.Contains(out, "client1") {
		t.Fatalf("members -status failed = %d %q", code, out)
	}
	// Joining a member already joined is fine and says so.
	if code, out, errOut := meshd(t, "join", addr, server.GossipAddr()); code != 0 || !strings.Contains(out, "joined") {
		t.Fatalf("join = %d %q %q", code, out, errOut)
	}
	if code, _, errOut := meshd(t, "join", addr, "127.0.0.1:1"); code == 0 || errOut == "" {
		t.Fatalf("join of nothing = %d %q", code, errOut)
	}
	if code, _, errOut := meshd(t, "force-leave", addr, "no-such-node"); code == 0 || !strings.Contains(errOut, "404") {
		t.Fatalf("force-leave of an unknown node = %d %q", code, errOut)
	}
	// The client leaves gracefully: its node goes from the catalog.
	if code, out, errOut := meshd(t, "leave", addr); code != 0 || !strings.Contains(out, "Graceful leave complete") {
		t.Fatalf("leave = %d %q %q", code, out, errOut)
	}
	testkit.Eventually(t, 30*time.Second, "client1 deregistered", func() bool {
		resp, err := http.Get(server.HTTP + "/v1/catalog/node/client1")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.TrimSpace(string(b)) == "null"
	})
	code, out, _ = meshd(t, "members", "-http-addr="+server.HTTPAddr(), "-status", "left")
	if code != 0 || !strings.Contains(out, "client1") {
		t.Fatalf("members -status left = %d %q", code, out)
	}
}

func TestWANCommands(t *testing.T) {
	dc1 := nodetest.StartClusterWith(t, 1, 1, nodetest.Options{Datacenter: "dc1", WAN: true})
	dc2 := nodetest.StartClusterWith(t, 1, 0, nodetest.Options{Datacenter: "dc2", WAN: true})
	addr2 := "-http-addr=" + dc2[0].HTTPAddr()
	if code, out, errOut := meshd(t, "join", "-wan", addr2, dc1[0].WANAddr()); code != 0 || !strings.Contains(out, "joined") {
		t.Fatalf("join -wan = %d %q %q", code, out, errOut)
	}
	testkit.Eventually(t, 10*time.Second, "both servers in dc1's WAN pool", func() bool {
		code, out, _ := meshd(t, "members", "-wan", "-http-addr="+dc1[0].HTTPAddr())
		return code == 0 && strings.Contains(out, "server1.dc1") && strings.Contains(out, "server1.dc2") &&
			strings.Count(out, "alive") == 2
	})
	// A client has no WAN pool: it says whom to ask.
	if code, _, errOut := meshd(t, "members", "-wan", "-http-addr="+dc1[1].HTTPAddr()); code == 0 || !strings.Contains(errOut, "ask a server") {
		t.Fatalf("members -wan on a client = %d %q", code, errOut)
	}
	if code, _, errOut := meshd(t, "join", "-wan", "-http-addr="+dc1[1].HTTPAddr(), dc2[0].WANAddr()); code == 0 || !strings.Contains(errOut, "only run by servers") {
		t.Fatalf("join -wan on a client = %d %q", code, errOut)
	}
	if code, _, errOut := meshd(t, "force-leave", "-wan", addr2, "nobody.dc3"); code == 0 || !strings.Contains(errOut, "404") {
		t.Fatalf("force-leave -wan of an unknown member = %d %q", code, errOut)
	}
}
