package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// memberStatuses are serf's status codes, as agent/members carries them.
var memberStatuses = map[int]string{0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}

func runMembers(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("members", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	detailed := fs.Bool("detailed", false, "Show every tag of each member.")
	status := fs.String("status", "", "Show only members in this status (alive, left, failed...).")
	wan := fs.Bool("wan", false, "List the WAN pool: the servers of every datacenter (ask a server).")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	path := "/v1/agent/members"
	if *wan {
		path += "?wan=1"
	}
	var members []struct {
		Name   string
		Addr   string
		Port   int
		Tags   map[string]string
		Status int
	}
	if err := client().getJSON(path, &members); err != nil {
		return fail(stderr, "members", err)
	}
	if *wan && len(members) == 0 {
		fmt.Fprintln(stderr, "meshd members: no WAN members: only servers are in the WAN pool; ask a server (-http-addr)")
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if *detailed {
		fmt.Fprintln(tw, "Node\tAddress\tStatus\tTags")
	} else {
		fmt.Fprintln(tw, "Node\tAddress\tStatus\tType\tDC")
	}
	for _, m := range members {
		st := memberStatuses[m.Status]
		if *status != "" && st != *status {
			continue
		}
		addr := net.JoinHostPort(m.Addr, strconv.Itoa(m.Port))
		if *detailed {
			var tags []string
			for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
				tags = append(tags, k+"="+m.Tags[k])
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, addr, st, strings.Join(tags, ","))
			continue
		}
		role := "client"
		if m.Tags["role"] == "server" {
			role = "server"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, addr, st, role, m.Tags["dc"])
	}
	return boolCode(tw.Flush() == nil)
}

func runJoin(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	wan := fs.Bool("wan", false, "Join the WAN pool through a server of another datacenter (ask a server; WAN port 8302 by default).")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "Usage: meshd join [-wan] [-http-addr addr] <address>...")
		return 1
	}
	query := ""
	if *wan {
		query = "?wan=1"
	}
	c := client()
	joined := 0
	for _, addr := range fs.Args() {
		if err := c.put("/v1/agent/join/"+addr+query, nil); err != nil {
			fmt.Fprintf(stderr, "meshd join: %s: %v\n", addr, err)
			continue
		}
		joined++
	}
	if joined == 0 {
		return 1
	}
	fmt.Fprintf(stdout, "Successfully joined cluster by contacting %d nodes.\n", joined)
	return 0
}

func runLeave(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("leave", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if err := client().put("/v1/agent/leave", nil); err != nil {
		return fail(stderr, "leave", err)
	}
	fmt.Fprintln(stdout, "Graceful leave complete")
	return 0
}

func runForceLeave(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("force-leave", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	prune := fs.Bool("prune", false, "Remove the node from the member list entirely.")
	wan := fs.Bool("wan", false, "Force-leave a server from the WAN pool (its name is <node>.<dc>).")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "Usage: meshd force-leave [-prune] [-wan] [-http-addr addr] <node>")
		return 1
	}
	q := url.Values{}
	if *prune {
		q.Set("prune", "1")
	}
	if *wan {
		q.Set("wan", "1")
	}
	path := "/v1/agent/force-leave/" + fs.Arg(0)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if err := client().put(path, nil); err != nil {
		return fail(stderr, "force-leave", err)
	}
	return 0
}
