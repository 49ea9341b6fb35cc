package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"
)

const operatorUsage = `Usage: meshd operator raft list-peers [-http-addr addr]
       meshd operator raft remove-peer -id <server ID> | -address <ip:port> [-http-addr addr]
       meshd operator autopilot state [-http-addr addr]`

func runOperator(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, operatorUsage)
		return 1
	}
	switch args[0] + " " + args[1] {
	case "raft list-peers":
		return listPeers(args[2:], stdout, stderr)
	case "raft remove-peer":
		return removePeer(args[2:], stdout, stderr)
	case "autopilot state":
		return autopilotState(args[2:], stdout, stderr)
	}
	fmt.Fprintln(stderr, operatorUsage)
	return 1
}

// autopilotState prints the leader's autopilot view of the servers
// (/v1/operator/autopilot/health, which answers 429 while a server is
// unhealthy: that is an answer too).
func autopilotState(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("operator autopilot state", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 1
	}
	var h struct {
		Healthy          bool
		FailureTolerance int
		Servers          []struct {
			ID, Name, Address, SerfStatus, LastContact string
			Leader, Voter, Healthy                     bool
			LastTerm, LastIndex                        uint64
			StableSince                                time.Time
		}
	}
	if err := client().getJSONAllowing("/v1/operator/autopilot/health", &h, http.StatusTooManyRequests); err != nil {
		return fail(stderr, "operator autopilot state", err)
	}
	fmt.Fprintf(stdout, "Healthy:            %v\nFailure Tolerance:  %d\n\n", h.Healthy, h.FailureTolerance)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Node\tID\tAddress\tRole\tGossip\tHealthy\tLast contact\tTerm\tIndex\tStable since")
	for _, s := range h.Servers {
		role := "non-voter"
		switch {
		case s.Leader:
			role = "leader"
		case s.Voter:
			role = "voter"
		}
		stable := "-"
		if !s.StableSince.IsZero() {
			stable = s.StableSince.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\t%d\t%d\t%s\n", s.Name, s.ID, s.Address, role, s.SerfStatus, s.Healthy,
			s.LastContact, s.LastTerm, s.LastIndex, stable)
	}
	return boolCode(tw.Flush() == nil)
}

func listPeers(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("operator raft list-peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	if err := fs.Parse(args); err != nil {
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

// removePeer takes a server out of the Raft configuration, as Consul's
// operator raft remove-peer: a dead server in a datacenter that still has
// a leader (without one, see peers.json in the README).
func removePeer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("operator raft remove-peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	id := fs.String("id", "", "The ID of the server to remove.")
	address := fs.String("address", "", "The address (ip:port of its server port) of the server to remove.")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	var q, what string
	switch {
	case (*id == "") == (*address == ""):
		fmt.Fprintln(stderr, "operator raft remove-peer: give exactly one of -id or -address")
		return 1
	case *id != "":
		q, what = "id="+url.QueryEscape(*id), fmt.Sprintf("id %q", *id)
	default:
		q, what = "address="+url.QueryEscape(*address), fmt.Sprintf("address %q", *address)
	}
	rc, err := client().do("DELETE", "/v1/operator/raft/peer?"+q, nil)
	if err != nil {
		return fail(stderr, "operator raft remove-peer", err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	fmt.Fprintf(stdout, "Removed peer with %s\n", what)
	return 0
}

func boolCode(ok bool) int {
	if ok {
		return 0
	}
	return 1
}
