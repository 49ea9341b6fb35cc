//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"
)

// results collects the figures every scenario measured; TestMain prints
// them and writes RESULTS.md.
var results = &figures{}

type figure struct {
	scenario, name, value string
}

type figures struct {
	mu     sync.Mutex
	rows   []figure
	status map[string]string
	order  []string
}

func (f *figures) add(scenario, name, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows = append(f.rows, figure{scenario, name, fmt.Sprintf(format, args...)})
}

func (f *figures) done(scenario string, failed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == nil {
		f.status = map[string]string{}
	}
	if _, ok := f.status[scenario]; !ok {
		f.order = append(f.order, scenario)
	}
	f.status[scenario] = "pass"
	if failed {
		f.status[scenario] = "FAIL"
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func (f *figures) write(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.order) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# meshd end-to-end results\n\n")
	fmt.Fprintf(&b, "Written by `make e2e` (scripts/e2e, `go test -tags e2e`) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs; %s; Docker engine %s. Every host is a container of the static binary on a private bridge network.\n\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), engineVersion())
	fmt.Fprintf(&b, "| Scenario | Result | Figure | Value |\n|---|---|---|---|\n")
	for _, sc := range f.order {
		first := true
		for _, r := range f.rows {
			if r.scenario != sc {
				continue
			}
			status := ""
			if first {
				status = f.status[sc]
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", sc, status, r.name, r.value)
			first = false
		}
		if first {
			fmt.Fprintf(&b, "| %s | %s | | |\n", sc, f.status[sc])
		}
	}
	fmt.Print("\n" + b.String())
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func engineVersion() string {
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
