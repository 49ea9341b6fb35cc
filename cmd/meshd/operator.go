package main

import (
	"bytes"
	"encoding/json"
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
       meshd operator autopilot state [-http-addr addr]
       meshd operator autopilot get-config [-stale] [-http-addr addr]
       meshd operator autopilot set-config [-cleanup-dead-servers=true|false] [-last-contact-threshold 200ms]
           [-max-trailing-logs 250] [-min-quorum 0] [-server-stabilization-time 10s] [-redundancy-zone-tag tag]
           [-disable-upgrade-migration=true|false] [-upgrade-version-tag tag] [-http-addr addr]`

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
	case "autopilot get-config":
		return autopilotGetConfig(args[2:], stdout, stderr)
	case "autopilot set-config":
		return autopilotSetConfig(args[2:], stdout, stderr)
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

// autopilotConfig is the body of /v1/operator/autopilot/configuration.
type autopilotConfig struct {
	CleanupDeadServers      bool
	LastContactThreshold    string
	MaxTrailingLogs         uint64
	MinQuorum               uint
	ServerStabilizationTime string
	RedundancyZoneTag       string
	DisableUpgradeMigration bool
	UpgradeVersionTag       string
	CreateIndex             uint64
	ModifyIndex             uint64
}

// autopilotGetConfig prints the autopilot configuration as Consul's
// operator autopilot get-config does.
func autopilotGetConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("operator autopilot get-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	stale := fs.Bool("stale", false, "Let any server answer from its own state, which may lag the leader's.")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	path := "/v1/operator/autopilot/configuration"
	if *stale {
		path += "?stale"
	}
	var c autopilotConfig
	if err := client().getJSON(path, &c); err != nil {
		return fail(stderr, "operator autopilot get-config", err)
	}
	fmt.Fprintf(stdout, "CleanupDeadServers = %v\nLastContactThreshold = %s\nMaxTrailingLogs = %d\nMinQuorum = %d\n"+
		"ServerStabilizationTime = %s\nRedundancyZoneTag = %q\nDisableUpgradeMigration = %v\nUpgradeVersionTag = %q\n",
		c.CleanupDeadServers, c.LastContactThreshold, c.MaxTrailingLogs, c.MinQuorum, c.ServerStabilizationTime,
		c.RedundancyZoneTag, c.DisableUpgradeMigration, c.UpgradeVersionTag)
	return 0
}

// autopilotSetConfig changes the settings given as flags, as Consul's
// operator autopilot set-config: it reads the configuration from the
// leader, and stores it changed only if nobody changed it in between
// (check-and-set on the index it read).
func autopilotSetConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("operator autopilot set-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	cleanup := fs.Bool("cleanup-dead-servers", false, "Remove servers gossip declared failed from the Raft configuration.")
	lastContact := fs.Duration("last-contact-threshold", 0, "A server that has not heard from the leader for longer is unhealthy.")
	trailing := fs.Uint64("max-trailing-logs", 0, "A server more log entries behind the leader is unhealthy.")
	minQuorum := fs.Uint("min-quorum", 0, "Never remove dead servers below this many voters.")
	stabilization := fs.Duration("server-stabilization-time", 0, "How long a new server must stay healthy before it gets a vote.")
	zoneTag := fs.String("redundancy-zone-tag", "", "Consul Enterprise's redundancy zone tag: stored, not acted on.")
	noMigration := fs.Bool("disable-upgrade-migration", false, "Consul Enterprise's upgrade migration switch: stored, not acted on.")
	versionTag := fs.String("upgrade-version-tag", "", "Consul Enterprise's upgrade version tag: stored, not acted on.")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshd operator autopilot set-config: unexpected argument %q\n", fs.Arg(0))
		return 1
	}
	const path = "/v1/operator/autopilot/configuration"
	api := client()
	var c autopilotConfig
	if err := api.getJSON(path, &c); err != nil {
		return fail(stderr, "operator autopilot set-config", err)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "cleanup-dead-servers":
			c.CleanupDeadServers = *cleanup
		case "last-contact-threshold":
			c.LastContactThreshold = lastContact.String()
		case "max-trailing-logs":
			c.MaxTrailingLogs = *trailing
		case "min-quorum":
			c.MinQuorum = *minQuorum
		case "server-stabilization-time":
			c.ServerStabilizationTime = stabilization.String()
		case "redundancy-zone-tag":
			c.RedundancyZoneTag = *zoneTag
		case "disable-upgrade-migration":
			c.DisableUpgradeMigration = *noMigration
		case "upgrade-version-tag":
			c.UpgradeVersionTag = *versionTag
		}
	})
	body, err := json.Marshal(c)
	if err != nil {
		return fail(stderr, "operator autopilot set-config", err)
	}
	rc, err := api.do("PUT", fmt.Sprintf("%s?cas=%d", path, c.ModifyIndex), bytes.NewReader(body))
	if err != nil {
		return fail(stderr, "operator autopilot set-config", err)
	}
	defer rc.Close()
	var updated bool
	if err := json.NewDecoder(io.LimitReader(rc, 64)).Decode(&updated); err != nil {
		return fail(stderr, "operator autopilot set-config", fmt.Errorf("reading the answer: %w", err))
	}
	if !updated {
		fmt.Fprintln(stdout, "Configuration could not be atomically updated, please try again")
		return 1
	}
	fmt.Fprintln(stdout, "Configuration updated!")
	return 0
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
	if err := client().send("DELETE", "/v1/operator/raft/peer?"+q, nil); err != nil {
		return fail(stderr, "operator raft remove-peer", err)
	}
	fmt.Fprintf(stdout, "Removed peer with %s\n", what)
	return 0
}

func boolCode(ok bool) int {
	if ok {
		return 0
	}
	return 1
}
