package node_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/meshd/meshd/node/nodetest"
)

// fuzzBodies sends fuzzed bodies to a real agent's endpoint. Whatever the
// bytes, the answer is a 2xx or a 4xx with a message, never a 5xx or a
// crash, and the agent keeps answering.
func fuzzBodies(f *testing.F, path string, seeds ...string) {
	fuzzRequests(f, "PUT", path, seeds...)
}

// fuzzRequests is fuzzBodies with another method.
func fuzzRequests(f *testing.F, method, path string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	a := nodetest.Start(f, nodetest.Options{Quiet: true})
	client := &http.Client{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := http.NewRequest(method, a.HTTP+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("agent stopped answering: %v", err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("body %q: %d %s", body, resp.StatusCode, msg)
		}
		if resp.StatusCode >= 400 && len(bytes.TrimSpace(msg)) == 0 {
			t.Fatalf("body %q: %d with no message", body, resp.StatusCode)
		}
	})
}

func FuzzAgentServiceRegister(f *testing.F) {
	fuzzBodies(f, "/v1/agent/service/register",
		`{"Name":"web","Port":8080,"Tags":["v1"]}`,
		`{"name":"web","id":"w1","port":1,"meta":{"a":"b"},"weights":{"passing":3,"warning":1}}`,
		`{"Name":"web","Check":{"TTL":"10s","Status":"passing"}}`,
		`{"Name":"web","Checks":[{"TTL":"10s"},{"CheckID":"x","TTL":1000000000,"DeregisterCriticalServiceAfter":"1m"}]}`,
		`{"Name":"web","Port":-1}`,
		`{"Name":"","Port":"80"}`,
		`[]`, `null`, `{"Name":{"a":1}}`,
	)
}

func FuzzCatalogRegister(f *testing.F) {
	fuzzBodies(f, "/v1/catalog/register",
		`{"Node":"n1","Address":"10.0.0.1","Service":{"Service":"db","Port":5432,"Tags":["primary"]}}`,
		`{"Node":"n1","Address":"10.0.0.1","Check":{"CheckID":"c","Status":"passing","Definition":{"TCP":"10.0.0.1:1","Interval":"10s"}}}`,
		`{"Node":"n1","Address":"10.0.0.1","Checks":[{"CheckID":"c","ServiceID":"nope"}]}`,
		`{"Node":"n1","SkipNodeUpdate":true,"NodeMeta":{"k":"v"},"TaggedAddresses":{"wan":"1.2.3.4"}}`,
		`{"node":"n2","address":"::1","service":{"id":"s","service":"s","weights":{"passing":-1}}}`,
	)
}

func FuzzAgentCheckRegister(f *testing.F) {
	fuzzBodies(f, "/v1/agent/check/register",
		`{"Name":"mem","TTL":"30s"}`,
		`{"ID":"disk","Name":"disk","TTL":"1m","Status":"warning","Notes":"n"}`,
		`{"Name":"web","HTTP":"http://127.0.0.1:1","Interval":"5s"}`,
		`{"Name":"x","TTL":"-5s"}`,
	)
}

func FuzzQueryCreate(f *testing.F) {
	fuzzRequests(f, "POST", "/v1/query",
		`{"Name":"web-any","Service":{"Service":"web","Failover":{"NearestN":2,"Datacenters":["dc2","dc3"]}},"DNS":{"TTL":"10s"}}`,
		`{"name":"q","service":{"service":"web","only_passing":true,"tags":["v1","!canary"],"node_meta":{"a":"b"},"ignore_check_ids":["x"],"near":"_agent"}}`,
		`{"Service":{"Service":"web","Failover":{"NearestN":-1}}}`,
		`{"Service":{"Service":"web"},"DNS":{"TTL":"x"}}`,
		`{"Template":{"Type":"name_prefix_match"},"Service":{"Service":"web"}}`,
		`{"Service":{"Service":"web","Failover":{"Datacenters":[""]}}}`,
		`{"Name":"a.b","Service":{"Service":"web"}}`,
		`[]`, `null`, `{"Service":"web"}`,
	)
}

func FuzzAutopilotConfiguration(f *testing.F) {
	fuzzBodies(f, "/v1/operator/autopilot/configuration",
		`{"CleanupDeadServers":true,"LastContactThreshold":"200ms","MaxTrailingLogs":250,"MinQuorum":0,"ServerStabilizationTime":"10s"}`,
		`{"LastContactThreshold":5000000000,"RedundancyZoneTag":"zone","UpgradeVersionTag":"v","DisableUpgradeMigration":true}`,
		`{"last_contact_threshold":"0s"}`, `{"MaxTrailingLogs":-1}`, `{"MinQuorum":1e30}`, `{"ServerStabilizationTime":"-1s"}`,
		`{"LastContactThreshold":null}`, `[]`, `null`, `true`,
	)
}
