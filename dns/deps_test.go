package dns_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps dns off the rest of meshd: it may use catalog's types
// and catalog's sub-packages (balance for single answers), nothing else
// (DESIGN.md, "Packages"). The agent hands it a Resolver.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	out, err := exec.Command(goTool, "list", "-e", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const module = "github.com/meshd/meshd/"
	allowed := []string{module + "dns", module + "catalog"}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list found only %v", deps)
	}
	for _, dep := range deps {
		if !strings.HasPrefix(dep, module) {
			continue
		}
		ok := false
		for _, a := range allowed {
			if dep == a || strings.HasPrefix(dep, a+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("dns depends on %s; only catalog and its sub-packages are allowed", dep)
		}
	}
}
