package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// memberStatus is a gossip member's state as the leader sees it.
type memberStatus string

const (
	memberAlive   memberStatus = "alive"
	memberLeaving memberStatus = "leaving"
	memberLeft    memberStatus = "left"
	memberFailed  memberStatus = "failed"
)

// member is what reconciliation needs of a gossip member.
type member struct {
	Name   string
	ID     string
	Addr   string
	Status memberStatus
}

// serfHealth outputs, as Consul's.
const (
	serfHealthFailedOutput = "Agent not live or unreachable"
)

// reconcileMember makes the catalog agree with one gossip member: every
// member is a node with the serfHealth check; a failed member's check is
// critical (its instances leave healthy answers); a member that left is
// deregistered with everything on it.
func (a *Agent) reconcileMember(ctx context.Context, m member) error {
	switch m.Status {
	case memberAlive, memberLeaving:
		return a.setSerfHealth(ctx, m, catalog.HealthPassing, serfHealthOutput)
	case memberFailed:
		return a.setSerfHealth(ctx, m, catalog.HealthCritical, serfHealthFailedOutput)
	case memberLeft:
		return a.deregisterMember(ctx, m.Name)
	}
	return nil
}

// setSerfHealth registers the member's node if the catalog has none, and
// sets its serfHealth check, writing only what changed.
func (a *Agent) setSerfHealth(ctx context.Context, m member, status, output string) error {
	res, err := server.NodeState.Call(ctx, a.servers, &rpc.NodeQuery{Node: m.Name})
	if err != nil {
		return err
	}
	if res.Node != nil {
		for _, c := range res.Checks {
			if c.CheckID == catalog.SerfCheckID && c.Status == status && c.Output == output {
				return nil // nothing to write
			}
		}
	}
	req := &catalog.RegisterRequest{
		ID: m.ID, Node: m.Name, Address: m.Addr, Datacenter: a.cfg.Datacenter,
		// The node keeps what its agent registered (meta, tagged
		// addresses): only the check is the leader's to write. The catalog
		// creates the node when it has none yet.
		SkipNodeUpdate: true,
		Checks: []*catalog.Check{{
			CheckID: catalog.SerfCheckID, Name: serfHealthName, Status: status, Output: output, Type: "serf",
		}},
	}
	if _, err := server.Register.Call(ctx, a.servers, req); err != nil {
		return fmt.Errorf("reconcile %s: %w", m.Name, err)
	}
	return nil
}

func (a *Agent) deregisterMember(ctx context.Context, name string) error {
	if strings.EqualFold(name, a.cfg.NodeName) {
		return nil // this server's own leave is handled by its leave path
	}
	if _, err := server.Deregister.Call(ctx, a.servers, &catalog.DeregisterRequest{Node: name}); err != nil {
		return fmt.Errorf("deregister %s: %w", name, err)
	}
	return nil
}

// reapUnknownNodes deregisters the agent nodes (those carrying serfHealth)
// that gossip no longer knows at all and whose time has come (due): they
// left or were reaped while no leader was looking. External nodes,
// without serfHealth, are left alone.
func (a *Agent) reapUnknownNodes(ctx context.Context, known map[string]bool, due func(node string) bool) error {
	res, err := server.ChecksInState.Call(ctx, a.servers, &rpc.StateQuery{State: catalog.HealthAny})
	if err != nil {
		return err
	}
	for _, c := range res.Checks {
		if c.CheckID != catalog.SerfCheckID || known[strings.ToLower(c.Node)] || !due(c.Node) {
			continue
		}
		if err := a.deregisterMember(ctx, c.Node); err != nil {
			return err
		}
	}
	return nil
}
