// Package archtest holds the module's one dependency test: the package
// graph of DESIGN.md ("Packages"), enforced on every import of every
// package, tests and the e2e tag included.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/meshd/meshd/"

// rules maps a package (a path below the module; "x/..." is x and every
// package below it, the longest match wins) to the imports it may have
// beyond the standard library: other packages of the module by path
// ("x/..." as above), outside modules by import path prefix.
var rules = map[string][]string{
	// The leaves: pure data, and the parts the node composes.
	"catalog":         {"github.com/hashicorp/go-memdb", "github.com/hashicorp/go-bexpr", "github.com/vmihailenco/msgpack/v5"},
	"catalog/balance": {"catalog", "github.com/hashicorp/golang-lru/v2"},
	"consensus":       {"catalog", "github.com/hashicorp/raft", "github.com/hashicorp/raft-wal", "github.com/hashicorp/go-hclog", "github.com/vmihailenco/msgpack/v5"},
	"gossip":          {"github.com/hashicorp/serf/", "github.com/hashicorp/memberlist", "github.com/hashicorp/go-msgpack/v2/codec"},
	"wan":             {"gossip", "github.com/hashicorp/serf/"},
	"checks":          {"google.golang.org/grpc"},
	"dns":             {"catalog/...", "github.com/miekg/dns"},
	"node/config":     {"catalog", "github.com/hashicorp/hcl", "github.com/go-viper/mapstructure/v2"},
	"node/rpc":        {"catalog", "github.com/vmihailenco/msgpack/v5", "golang.org/x/sys/unix"},
	"node/nodetest":   {"node/...", "catalog/...", "consensus", "gossip", "wan"},
	// A lone server in-process, for the tests of what calls the servers.
	"node/server/servertest": {"catalog", "consensus/...", "node/rpc", "node/server"},
	// Raft groups for the tests of the packages above consensus.
	"consensus/consensustest": {"catalog", "consensus", "internal/testkit"},
	// The server side: the RPC surface and its answers, forwarding to the
	// leader and to other datacenters, the leader's duties.
	"node/server": {"catalog", "consensus", "gossip", "wan", "checks", "node/config", "node/rpc",
		"github.com/hashicorp/go-memdb", "github.com/google/uuid", "github.com/prometheus/", "golang.org/x/time/rate"},
	// The HTTP API, over narrow interfaces the agent implements: the
	// servers' methods through an rpc.Caller, sentinel errors of the
	// leaves for status codes.
	"node/httpapi": {"catalog/...", "consensus", "checks", "node/config", "node/rpc", "node/server", "node/client",
		"github.com/prometheus/"},
	// The agent's own services and checks: registrations kept in the data
	// dir, their checks run, and anti-entropy.
	"node/local": {"catalog", "checks", "node/config", "node/rpc", "node/server", "golang.org/x/sync/errgroup"},
	// The client side: the remote caller and the agent cache.
	"node/client":  {"catalog", "wan", "node/config", "node/rpc", "node/server"},
	"internal/...": {}, // archtest, and the toolkit below
	// The agent composes everything above; only its sub-packages' tests
	// may import it back.
	"node": {"catalog/...", "consensus", "gossip", "wan", "checks", "dns", "node/config", "node/rpc", "node/server", "node/client", "node/local", "node/httpapi",
		"github.com/hashicorp/go-memdb", "github.com/hashicorp/go-sockaddr", "github.com/miekg/dns",
		"github.com/prometheus/", "github.com/google/uuid"},
	"cmd/meshd": {"node", "node/config"},
	// Scripts drive the built binary; they share only their own kits.
	"scripts/...":          {"scripts/internal/...", "github.com/miekg/dns", "github.com/anishathalye/porcupine"},
	"scripts/e2e":          {"scripts/internal/...", "github.com/miekg/dns"},
	"scripts/internal/...": {"scripts/internal/...", "github.com/anishathalye/porcupine"},
}

// toolkit is what every package may import: small mechanisms of the
// standard library's kind, written once for the module. They import
// nothing of the module themselves.
var toolkit = []string{"internal/backoff", "internal/clock", "internal/inflight"}

// testRules are what tests may import beyond their package's rules (and
// internal/testkit, which every test may): the test kits, the packages
// under test, and consul/api for compatibility.
var testRules = map[string][]string{
	"node/...":  {"node/...", "consensus/consensustest", "github.com/hashicorp/consul/api", "github.com/hashicorp/go-memdb", "github.com/hashicorp/raft", "github.com/miekg/dns"},
	"cmd/meshd": {"node/nodetest"},
	"consensus": {"github.com/hashicorp/raft"},
	"wan":       {"github.com/hashicorp/memberlist"},
}

// never are arrows DESIGN.md forbids outright, checked on top of the
// rules so that a rule widened by mistake still cannot allow them.
var never = [][2]string{
	{"catalog/...", "consensus"}, {"catalog/...", "node/..."}, {"catalog/...", "dns"}, {"catalog/...", "gossip"}, {"catalog/...", "wan"}, {"catalog/...", "checks"},
	{"consensus", "node/..."}, {"checks", "consensus"}, {"checks", "node/..."},
	{"dns", "consensus"}, {"dns", "node/..."}, {"gossip", "wan"}, {"gossip", "node/..."},
	{"node/config", "node"}, {"node/rpc", "node"}, {"node/rpc", "node/server"}, {"node/server", "node"}, {"node/client", "node"}, {"node/local", "node"}, {"node/httpapi", "node"}, {"node/httpapi", "node/local"}, {"node/server", "node/client"},
}

type pkg struct {
	ImportPath                         string
	Imports, TestImports, XTestImports []string
}

func listPackages(t *testing.T, tags string) []pkg {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command(goTool, "list", "-e", "-json", "-tags", tags, "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 15 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// match reports whether path (below the module) is pattern: a path, or
// "x/..." for x and everything below it.
func match(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

// ruleFor returns the most specific rule for path, by the length of its
// pattern.
func ruleFor(rules map[string][]string, path string) (allowed []string, ok bool) {
	best := -1
	for pattern, a := range rules {
		if match(pattern, path) && len(pattern) > best {
			best, allowed, ok = len(pattern), a, true
		}
	}
	return allowed, ok
}

// allows reports whether an import is in the list: a module package by
// pattern, an outside one by prefix.
func allows(list []string, imp string) bool {
	if own, ok := strings.CutPrefix(imp, module); ok {
		return slices.ContainsFunc(list, func(a string) bool { return standard(a) && match(a, own) })
	}
	return slices.ContainsFunc(list, func(a string) bool { return !standard(a) && strings.HasPrefix(imp, a) })
}

// standard reports whether an import path (or a rule's module pattern)
// has no domain in its first element: the standard library, or a path
// below this module as the rules write them.
func standard(imp string) bool { return !strings.Contains(strings.Split(imp, "/")[0], ".") }

// TestPackageGraph checks every import of every package of the module
// against DESIGN.md's graph.
func TestPackageGraph(t *testing.T) {
	for _, p := range listPackages(t, "e2e") {
		path, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok {
			continue
		}
		allowed, ok := ruleFor(rules, path)
		if !ok {
			t.Errorf("%s has no rule: add it to the graph in DESIGN.md and here", path)
			continue
		}
		extra, _ := ruleFor(testRules, path)
		check := func(imps []string, list []string, kind string) {
			for _, imp := range imps {
				if standard(imp) || imp == p.ImportPath {
					continue
				}
				if strings.HasPrefix(imp, module+"cmd/") {
					t.Errorf("%s %s %s: nothing imports cmd", path, kind, imp)
					continue
				}
				if own, isOwn := strings.CutPrefix(imp, module); isOwn && kind == "imports" {
					for _, n := range never {
						if match(n[0], path) && match(n[1], own) {
							t.Errorf("%s imports %s: DESIGN.md forbids %s → %s", path, imp, n[0], n[1])
						}
					}
				}
				if !allows(list, imp) {
					t.Errorf("%s %s %s, which its rule does not allow", path, kind, imp)
				}
			}
		}
		allowed = append(slices.Clone(allowed), toolkit...)
		check(p.Imports, allowed, "imports")
		tests := append(slices.Clone(allowed), append(extra, "internal/testkit")...)
		check(p.TestImports, tests, "tests import")
		check(p.XTestImports, append(tests, path), "tests import")
	}
}
