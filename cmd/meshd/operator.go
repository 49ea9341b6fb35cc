package main

import (
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
)

func runOperator(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "raft" || args[1] != "list-peers" {
		fmt.Fprintln(stderr, "Usage: meshd operator raft list-peers [-http-addr addr]")
		return 1
	}
	fs := flag.NewFlagSet("operator raft list-peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	if err := fs.Parse(args[2:]); err != nil {
		return 1
	}
	var conf struct {
		Servers []struct {
			ID, Node, Address string
			Leader, Voter     bool
		}
	}
	if err := client().getJSON("/v1/operator/raft/configuration", &conf); err != nil {
		return fail(stderr, "operator raft list-peers", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Node\tID\tAddress\tState\tVoter")
	for _, s := range conf.Servers {
		state := "follower"
		if s.Leader {
			state = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", s.Node, s.ID, s.Address, state, s.Voter)
	}
	return boolCode(tw.Flush() == nil)
}

func boolCode(ok bool) int {
	if ok {
		return 0
	}
	return 1
}
