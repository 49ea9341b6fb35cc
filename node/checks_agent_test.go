package node_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/nodetest"
)

func checkStatus(t *testing.T, c *api.Client, service, checkID string) (string, string) {
	t.Helper()
	hcs, _, err := c.Health().Checks(service, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, hc := range hcs {
		if hc.CheckID == checkID {
			return hc.Status, hc.Output
		}
	}
	return "", ""
}

// The registry polls external services itself: a TCP check registered
// through the catalog on a node without an agent runs on the server.
func TestServerRunsExternalChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	_, err = c.Catalog().Register(&api.CatalogRegistration{Node: "db-host", Address: "127.0.0.1",
		Service: &api.AgentService{ID: "db", Service: "db", Port: 5432},
		Checks: api.HealthChecks{{CheckID: "db-tcp", ServiceID: "db", Status: api.HealthCritical,
			Definition: api.HealthCheckDefinition{TCP: addr, IntervalDuration: time.Second, TimeoutDuration: time.Second}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the server to run the external check", func() bool {
		s, _ := checkStatus(t, c, "db", "db-tcp")
		return s == api.HealthPassing
	})
	ln.Close()
	testkit.Eventually(t, 10*time.Second, "the external check to see the port closed", func() bool {
		s, _ := checkStatus(t, c, "db", "db-tcp")
		return s == api.HealthCritical
	})
}

// An alias check mirrors the health of another instance.
func TestAliasCheck(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, a)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "app", Name: "app", Port: 80,
		Check: &api.AgentServiceCheck{CheckID: "app-ttl", TTL: "1m"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "app-sidecar", Name: "app-sidecar", Port: 21000,
		Check: &api.AgentServiceCheck{CheckID: "sidecar-alias", AliasService: "app"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{api.HealthCritical, api.HealthPassing, api.HealthWarning} {
		switch want {
		case api.HealthPassing:
			c.Agent().PassTTL("app-ttl", "")
		case api.HealthWarning:
			c.Agent().WarnTTL("app-ttl", "")
		}
		testkit.Eventually(t, 10*time.Second, "the alias to mirror "+want, func() bool {
			s, _ := checkStatus(t, c, "app-sidecar", "sidecar-alias")
			return s == want
		})
	}
}

// Script checks from a config file run when enable_local_script_checks is
// set; the same check through the HTTP API is still refused.
func TestLocalScriptChecks(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho all good\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "svc.json")
	if err := os.WriteFile(cfgFile, []byte(`{"service":{"name":"batch","port":9,"check":{"id":"batch-script","args":["`+script+`"],"interval":"1s"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	on := true
	a := nodetest.Start(t, nodetest.Options{ConfigFiles: []string{cfgFile}, Edit: func(f *config.File) { f.EnableLocalScriptChecks = &on }})
	c := newClient(t, a)
	testkit.Eventually(t, 10*time.Second, "the script check to pass", func() bool {
		s, out := checkStatus(t, c, "batch", "batch-script")
		return s == api.HealthPassing && out == "all good\n"
	})
	code, body := do(t, "PUT", a.HTTP+"/v1/agent/check/register", `{"Name":"remote","Args":["`+script+`"],"Interval":"10s"}`)
	if code != 400 {
		t.Fatalf("a script check through the API with only local script checks enabled: %d %s", code, body)
	}
}

// A registration that sets a status starts from it, whatever status the
// check had before (a deploy keeping traffic off until the app is ready).
func TestExplicitStatusWinsOnReRegistration(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{DataDir: t.TempDir()})
	c := newClient(t, a)
	reg := func(status string) {
		t.Helper()
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web", Name: "web", Port: 80,
			Check: &api.AgentServiceCheck{CheckID: "web-ready", TTL: "1m", Status: status}}); err != nil {
			t.Fatal(err)
		}
	}
	reg("")
	if err := c.Agent().PassTTL("web-ready", "up"); err != nil {
		t.Fatal(err)
	}
	reg(api.HealthCritical)
	if s, _ := checkStatus(t, c, "web", "web-ready"); s != api.HealthCritical {
		t.Fatalf("re-registered with status critical, got %s", s)
	}
	// Without a status, a re-registration keeps what the check showed.
	c.Agent().PassTTL("web-ready", "up")
	reg("")
	if s, _ := checkStatus(t, c, "web", "web-ready"); s != api.HealthPassing {
		t.Fatalf("re-registered without a status, got %s", s)
	}
}
