package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
	nodetest.Eventually(t, 30*time.Second, "client1 deregistered", func() bool {
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
