package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/meshd/meshd/node/nodetest"
)

func do(t testing.TB, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadInput(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string // in the message
	}{
		{"malformed json", "PUT", "/v1/agent/service/register", `{"Name":`, 400, "decode"},
		{"empty body", "PUT", "/v1/agent/service/register", ``, 400, "body"},
		{"missing name", "PUT", "/v1/agent/service/register", `{"Port":80}`, 400, "Name"},
		{"blank name", "PUT", "/v1/agent/service/register", `{"Name":"  "}`, 400, "Name"},
		{"negative port", "PUT", "/v1/agent/service/register", `{"Name":"x","Port":-1}`, 400, "Port"},
		{"port too big", "PUT", "/v1/agent/service/register", `{"Name":"x","Port":65536}`, 400, "Port"},
		{"port as text", "PUT", "/v1/agent/service/register", `{"Name":"x","Port":"http"}`, 400, "Port"},
		{"bad ttl", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"TTL":"soon"}}`, 400, "TTL"},
		{"bad status", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"TTL":"10s","Status":"sick"}}`, 400, "Status"},
		{"second check bad", "PUT", "/v1/agent/service/register", `{"Name":"x","Checks":[{"TTL":"10s"},{"TTL":"-1s"}]}`, 400, "Checks[1]"},
		{"check with no type", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"Interval":"10s"}}`, 400, "must set one of"},
		{"check with two types", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"HTTP":"http://127.0.0.1:1/","TCP":"127.0.0.1:1","Interval":"10s"}}`, 400, "cannot be combined"},
		{"check without interval", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"TCP":"127.0.0.1:1"}}`, 400, "Interval"},
		{"check interval below 1s", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"TCP":"127.0.0.1:1","Interval":"100ms"}}`, 400, "at least 1s"},
		{"check bad timeout", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"TCP":"127.0.0.1:1","Interval":"10s","Timeout":"-1s"}}`, 400, "Timeout"},
		{"TTL below 1s", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"TTL":"500ms"}}`, 400, "at least 1s"},
		{"bad HTTP URL", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"HTTP":"ftp://x","Interval":"10s"}}`, 400, "HTTP"},
		{"script checks off for check register", "PUT", "/v1/agent/check/register", `{"Name":"s","Args":["/bin/true"],"Interval":"10s"}`, 400, "script checks are disabled"},
		{"script checks off", "PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"Args":["true"],"Interval":"10s"}}`, 400, "script checks are disabled"},
		{"NUL in service name", "PUT", "/v1/agent/service/register", `{"Name":"web\u0000x"}`, 400, "control characters"},
		{"newline in tag", "PUT", "/v1/agent/service/register", `{"Name":"web","Tags":["a\nb"]}`, 400, "Tags[0]"},
		{"catalog NUL in node", "PUT", "/v1/catalog/register", `{"Node":"n\u0000","Address":"1.2.3.4"}`, 400, "control characters"},
		{"check bad duration", "PUT", "/v1/agent/check/register", `{"Name":"c","TTL":"x"}`, 400, "TTL"},
		{"check of unknown service", "PUT", "/v1/agent/check/register", `{"Name":"c","TTL":"10s","ServiceID":"nope"}`, 400, "ServiceID"},
		{"update bad status", "PUT", "/v1/agent/check/update/c1", `{"Status":"meh"}`, 400, "Status"},
		{"update unknown check", "PUT", "/v1/agent/check/update/nope", `{"Status":"passing"}`, 404, "nope"},
		{"pass unknown check", "PUT", "/v1/agent/check/pass/nope", ``, 404, "nope"},
		{"deregister unknown service", "PUT", "/v1/agent/service/deregister/nope", ``, 404, "nope"},
		{"deregister unknown check", "PUT", "/v1/agent/check/deregister/nope", ``, 404, "nope"},
		{"get unknown service", "GET", "/v1/agent/service/nope", ``, 404, "nope"},
		{"catalog no node", "PUT", "/v1/catalog/register", `{"Address":"1.2.3.4"}`, 400, "Node"},
		{"catalog no address", "PUT", "/v1/catalog/register", `{"Node":"n"}`, 400, "Address"},
		{"catalog no service name", "PUT", "/v1/catalog/register", `{"Node":"n","Address":"1.2.3.4","Service":{"Port":1}}`, 400, "Service.Service"},
		{"catalog bad port", "PUT", "/v1/catalog/register", `{"Node":"n","Address":"1.2.3.4","Service":{"Service":"s","Port":99999}}`, 400, "Service.Port"},
		{"catalog bad check status", "PUT", "/v1/catalog/register", `{"Node":"n","Address":"1.2.3.4","Check":{"CheckID":"c","Status":"sick"}}`, 400, "Status"},
		{"catalog check of unknown service", "PUT", "/v1/catalog/register", `{"Node":"n","Address":"1.2.3.4","Checks":[{"CheckID":"c","ServiceID":"zz"}]}`, 400, "ServiceID"},
		{"catalog bad interval", "PUT", "/v1/catalog/register", `{"Node":"n","Address":"1.2.3.4","Check":{"CheckID":"c","Definition":{"Interval":"often"}}}`, 400, "Interval"},
		{"catalog check interval too short", "PUT", "/v1/catalog/register", `{"Node":"n","Address":"1.2.3.4","Check":{"CheckID":"c","Definition":{"TCP":"1.2.3.4:1","Interval":"10ms"}}}`, 400, "Interval"},
		{"catalog check bad URL", "PUT", "/v1/catalog/register", `{"Node":"n","Address":"1.2.3.4","Check":{"CheckID":"c","Definition":{"HTTP":"nope","Interval":"10s"}}}`, 400, "HTTP"},
		{"catalog write onto an agent's node", "PUT", "/v1/catalog/register", `{"Node":"node1","Address":"127.0.0.1","Service":{"Service":"sneaky","Port":1}}`, 409, "runs a meshd agent"},
		{"deregister no node", "PUT", "/v1/catalog/deregister", `{}`, 400, "Node"},
		{"unknown state", "GET", "/v1/health/state/sleepy", ``, 400, "state"},
		{"bad index", "GET", "/v1/health/service/web?index=abc", ``, 400, "index"},
		{"bad wait", "GET", "/v1/health/service/web?index=1&wait=forever", ``, 400, "wait"},
		{"bad passing", "GET", "/v1/health/service/web?passing=maybe", ``, 400, "passing"},
		{"stale and consistent", "GET", "/v1/catalog/nodes?stale&consistent", ``, 400, "stale"},
		{"bad filter", "GET", "/v1/health/service/web?filter=Service.Tags%20contains", ``, 400, "filter"},
		{"wrong method", "DELETE", "/v1/agent/service/register", ``, 405, ""},
	}
	// One valid TTL check to update with a bad status.
	if code, body := do(t, "PUT", a.HTTP+"/v1/agent/check/register", `{"ID":"c1","Name":"c1","TTL":"1m"}`); code != 200 {
		t.Fatalf("setup: %d %s", code, body)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, tt.method, a.HTTP+tt.path, tt.body)
			if code != tt.code || !strings.Contains(strings.ToLower(body), strings.ToLower(tt.want)) {
				t.Fatalf("%s %s %s = %d %q, want %d with %q", tt.method, tt.path, tt.body, code, body, tt.code, tt.want)
			}
		})
	}
	// Nothing of the refused writes reached the catalog or the agent.
	for path, want := range map[string]string{
		"/v1/catalog/services": `{}`,
		"/v1/agent/services":   `{}`,
		"/v1/catalog/node/n":   `null`,
	} {
		code, body := do(t, "GET", a.HTTP+path, "")
		if code != 200 || strings.TrimSpace(body) != want {
			t.Fatalf("GET %s = %d %s, want %s", path, code, body, want)
		}
	}
	code, body := do(t, "GET", a.HTTP+"/v1/catalog/nodes", "")
	var nodes []map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &nodes) != nil || len(nodes) != 1 {
		t.Fatalf("nodes after refused writes: %d %s", code, body)
	}
}

func TestQueryFlagForms(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	if code, body := do(t, "PUT", a.HTTP+"/v1/agent/service/register",
		`{"name":"web","port":80,"check":{"ttl":"1m","status":"warning"},"unknown_field":true}`); code != 200 {
		t.Fatalf("snake/lower-case register: %d %s", code, body)
	}
	for _, q := range []struct {
		query string
		want  int
	}{
		{"", 1}, {"?passing", 0}, {"?passing=", 0}, {"?passing=1", 0}, {"?passing=true", 0},
		{"?passing=0", 1}, {"?passing=false", 1}, {"?stale", 1}, {"?stale=", 1}, {"?consistent", 1},
	} {
		code, body := do(t, "GET", a.HTTP+"/v1/health/service/web"+q.query, "")
		var got []any
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil || len(got) != q.want {
			t.Fatalf("health/service/web%s = %d %s, want %d entries", q.query, code, body, q.want)
		}
	}
}
