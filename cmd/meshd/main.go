// Command meshd is the meshd agent and its command-line interface.
package main

import (
	"fmt"
	"io"
	"os"
)

// command is one subcommand: it parses its own flags and returns the
// process exit code.
type command func(args []string, stdout, stderr io.Writer) int

func commands() map[string]command {
	return map[string]command{
		"agent":       runAgent,
		"force-leave": runForceLeave,
		"join":        runJoin,
		"leave":       runLeave,
		"members":     runMembers,
		"operator":    runOperator,
		"snapshot":    runSnapshot,
		"version":     runVersion,
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: meshd <command> [flags]

Commands:
  agent        Run a meshd agent (meshd agent -dev to try it out)
  join         Tell the agent to join the cluster through <address>
               (-wan: a server joins another datacenter's servers)
  members      List the cluster's members (-detailed for every tag,
               -wan for the servers of every datacenter)
  leave        Make the agent leave the cluster gracefully and stop
  force-leave  Mark a failed node as left (-prune forgets it entirely,
               -wan for a server in the WAN pool)
  operator     Operate the cluster: operator raft list-peers | remove-peer,
               operator autopilot state | get-config | set-config
  snapshot     Save or restore the catalog: snapshot save|restore <file>
  version      Print the version

Every command but agent talks to an agent's HTTP API at -http-addr
(default 127.0.0.1:8500, or the MESHD_HTTP_ADDR environment variable).
`)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage(stderr)
		return 1
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "meshd: unknown command %q\n\n", args[0])
		usage(stderr)
		return 1
	}
	return cmd(args[1:], stdout, stderr)
}
