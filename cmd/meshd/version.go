package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/meshd/meshd/node"
)

func runVersion(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "meshd v%s (%s, %s/%s)\n", node.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
