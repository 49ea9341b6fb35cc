package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/nodetest"
)

func meshd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func register(t *testing.T, base, body string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", base+"/v1/catalog/register", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
}

func services(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/v1/catalog/services")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return strings.TrimSpace(b.String())
}

func TestSnapshotAndOperatorCommands(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{DataDir: t.TempDir()})
	addr := "-http-addr=" + a.HTTPAddr()

	code, out, errOut := meshd(t, "operator", "raft", "list-peers", addr)
	if code != 0 || !strings.Contains(out, "node1") || !strings.Contains(out, "leader") {
		t.Fatalf("list-peers = %d %q %q", code, out, errOut)
	}

	register(t, a.HTTP, `{"Node":"ext","Address":"10.0.0.1","Service":{"Service":"before","Port":1}}`)
	file := filepath.Join(t.TempDir(), "backup.snap")
	if code, out, errOut := meshd(t, "snapshot", "save", addr, file); code != 0 {
		t.Fatalf("snapshot save = %d %q %q", code, out, errOut)
	}
	register(t, a.HTTP, `{"Node":"ext","Address":"10.0.0.1","Service":{"Service":"after","Port":2}}`)
	if s := services(t, a.HTTP); !strings.Contains(s, "after") {
		t.Fatalf("services before restore = %s", s)
	}
	if code, out, errOut := meshd(t, "snapshot", "restore", addr, file); code != 0 {
		t.Fatalf("snapshot restore = %d %q %q", code, out, errOut)
	}
	if s := services(t, a.HTTP); !strings.Contains(s, "before") || strings.Contains(s, "after") {
		t.Fatalf("services after restore = %s", s)
	}

	// A damaged archive is refused with a message, and nothing changes.
	bad := filepath.Join(t.TempDir(), "bad.snap")
	data, _ := os.ReadFile(file)
	data[len(data)/2] ^= 0xff
	os.WriteFile(bad, data, 0o600)
	code, _, errOut = meshd(t, "snapshot", "restore", addr, bad)
	if code == 0 || !strings.Contains(errOut, "400") {
		t.Fatalf("restore of a damaged archive = %d %q", code, errOut)
	}
	os.WriteFile(bad, []byte("not a snapshot"), 0o600)
	if code, _, errOut = meshd(t, "snapshot", "restore", addr, bad); code == 0 || !strings.Contains(errOut, "bad snapshot") {
		t.Fatalf("restore of garbage = %d %q", code, errOut)
	}
	if s := services(t, a.HTTP); !strings.Contains(s, "before") {
		t.Fatalf("services after refused restores = %s", s)
	}

	// remove-peer wants exactly one of -id and -address, and passes on
	// the server's answer.
	if code, _, errOut := meshd(t, "operator", "raft", "remove-peer", addr); code == 0 || !strings.Contains(errOut, "exactly one of -id or -address") {
		t.Fatalf("remove-peer without a peer = %d %q", code, errOut)
	}
	if code, _, errOut := meshd(t, "operator", "raft", "remove-peer", addr, "-id", "nope"); code == 0 || !strings.Contains(errOut, `id "nope" was not found in the Raft configuration`) {
		t.Fatalf("remove-peer of an unknown ID = %d %q", code, errOut)
	}

	// autopilot state: the lone server, healthy, leading.
	var state string
	testkit.Eventually(t, 10*time.Second, "autopilot state", func() bool {
		code, o, _ := meshd(t, "operator", "autopilot", "state", addr)
		state = o
		return code == 0 && strings.Contains(o, "Healthy:            true")
	})
	if out := state; !strings.Contains(out, "node1") || !strings.Contains(out, "leader") || !strings.Contains(out, "Failure Tolerance:  0") {
		t.Fatalf("autopilot state = %q", out)
	}

	// autopilot get-config: the config file's settings (Consul's
	// defaults), stored by the leader; set-config changes the flags given
	// and nothing else.
	testkit.Eventually(t, 10*time.Second, "the leader stores the autopilot configuration", func() bool {
		resp, err := http.Get(a.HTTP + "/v1/operator/autopilot/configuration")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var c struct{ ModifyIndex uint64 }
		return json.NewDecoder(resp.Body).Decode(&c) == nil && c.ModifyIndex > 0
	})
	code, conf, errOut := meshd(t, "operator", "autopilot", "get-config", addr)
	want := "CleanupDeadServers = true\nLastContactThreshold = 200ms\nMaxTrailingLogs = 250\nMinQuorum = 0\n" +
		"ServerStabilizationTime = 10s\nRedundancyZoneTag = \"\"\nDisableUpgradeMigration = false\nUpgradeVersionTag = \"\"\n"
	if code != 0 || conf != want {
		t.Fatalf("autopilot get-config = %d %q %q, want %q", code, conf, errOut, want)
	}
	if code, out, errOut := meshd(t, "operator", "autopilot", "set-config", addr, "-max-trailing-logs", "40",
		"-cleanup-dead-servers=false", "-server-stabilization-time", "3s"); code != 0 || out != "Configuration updated!\n" {
		t.Fatalf("autopilot set-config = %d %q %q", code, out, errOut)
	}
	code, out, errOut = meshd(t, "operator", "autopilot", "get-config", "-stale", addr)
	want = "CleanupDeadServers = false\nLastContactThreshold = 200ms\nMaxTrailingLogs = 40\nMinQuorum = 0\n" +
		"ServerStabilizationTime = 3s\nRedundancyZoneTag = \"\"\nDisableUpgradeMigration = false\nUpgradeVersionTag = \"\"\n"
	if code != 0 || out != want {
		t.Fatalf("autopilot get-config after set-config = %d %q %q, want %q", code, out, errOut, want)
	}
	if code, _, errOut := meshd(t, "operator", "autopilot", "set-config", addr, "-max-trailing-logs", "-1"); code == 0 || !strings.Contains(errOut, "max-trailing-logs") {
		t.Fatalf("set-config with a negative count = %d %q", code, errOut)
	}
	if code, _, errOut := meshd(t, "operator", "autopilot", "set-config", addr, "-last-contact-threshold", "0s"); code == 0 || !strings.Contains(errOut, "LastContactThreshold") {
		t.Fatalf("set-config with a zero threshold = %d %q", code, errOut)
	}

	// Unreachable agent: a clear message.
	if code, _, errOut := meshd(t, "operator", "raft", "list-peers", "-http-addr=127.0.0.1:1"); code == 0 || !strings.Contains(errOut, "cannot reach the agent") {
		t.Fatalf("unreachable agent = %d %q", code, errOut)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := meshd(t, "bogus"); code == 0 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command = %d %q", code, errOut)
	}
	if code, out, _ := meshd(t, "version"); code != 0 || !strings.HasPrefix(out, "meshd v") {
		t.Fatalf("version = %d %q", code, out)
	}
}
