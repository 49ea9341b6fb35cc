package gossip

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps gossip a leaf of meshd (DESIGN.md, "Packages"): no
// other meshd package, and directly only the standard library, serf,
// memberlist and serf's msgpack codec (for the exact tag size).
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	list := func(format string, deps bool) []string {
		args := []string{"list", "-f", format}
		if deps {
			args = append(args, "-deps")
		}
		out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}

	const module = "github.com/meshd/meshd/"
	deps := list("{{.ImportPath}}", true)
	if len(deps) < 10 {
		t.Fatalf("go list found only %v", deps)
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, module) && dep != module+"gossip" {
			t.Errorf("gossip depends on %s", dep)
		}
	}

	allowed := []string{
		"github.com/hashicorp/serf/",
		"github.com/hashicorp/memberlist",
		"github.com/hashicorp/go-msgpack/v2/codec",
	}
	for _, imp := range list(`{{join .Imports " "}}`, false) {
		if !strings.Contains(strings.Split(imp, "/")[0], ".") {
			continue // standard library
		}
		ok := false
		for _, a := range allowed {
			if imp == a || strings.HasPrefix(imp, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("gossip imports %s; only the standard library, serf and memberlist are allowed", imp)
		}
	}
}
