package node

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/hashicorp/go-memdb"
	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// aliasSource answers alias checks from the catalog: the health of the
// instance an alias check mirrors (a sidecar's check mirroring its app).
type aliasSource struct {
	a *Agent
}

var _ checks.AliasSource = aliasSource{}

// AliasHealth implements checks.AliasSource. Its index is a fingerprint of
// the answer, so it returns only when the answer changes, and it watches
// only the rows of the aliased node.
func (s aliasSource) AliasHealth(ctx context.Context, node, serviceID string, lastIndex uint64) (string, string, uint64, error) {
	if node == "" {
		node = s.a.cfg.NodeName
	}
	if s.a.server == nil || s.a.server.raft == nil {
		return s.remoteAliasHealth(ctx, node, serviceID, lastIndex)
	}
	for {
		ws := memdb.NewWatchSet()
		status, output, err := s.aliasStatus(ws, node, serviceID)
		if err != nil {
			return "", "", 0, err
		}
		h := fnv.New64a()
		fmt.Fprintf(h, "%s\x00%s", status, output)
		idx := h.Sum64() | 1 // never 0, which means "no answer yet"
		if idx != lastIndex {
			return status, output, idx, nil
		}
		if err := ws.WatchCtx(ctx); err != nil {
			return "", "", 0, err
		}
	}
}

// aliasStatus is the worst status of the instance's checks and its node's.
func (s aliasSource) aliasStatus(ws memdb.WatchSet, node, serviceID string) (string, string, error) {
	_, n, svcs, err := s.a.server.store.NodeServices(ws, node)
	if err != nil {
		return "", "", err
	}
	var all []*catalog.Check
	if n != nil {
		if _, all, err = s.a.server.store.NodeChecks(ws, node); err != nil {
			return "", "", err
		}
	}
	status, output := aliasFrom(node, serviceID, n, svcs, all)
	return status, output, nil
}

// aliasFrom computes an alias check's result from what the catalog holds
// of the aliased node.
func aliasFrom(node, serviceID string, n *catalog.Node, svcs []*catalog.Service, all []*catalog.Check) (string, string) {
	if n == nil {
		return catalog.HealthCritical, fmt.Sprintf("Aliased node %q is not registered", node)
	}
	found := serviceID == "" // an alias of the node alone
	for _, svc := range svcs {
		if svc.ID == serviceID {
			found = true
		}
	}
	if !found {
		return catalog.HealthCritical, fmt.Sprintf("Aliased service %q is not registered on node %q", serviceID, node)
	}
	var worst *catalog.Check
	status := catalog.HealthPassing
	for _, c := range all {
		if c.ServiceID != "" && c.ServiceID != serviceID {
			continue
		}
		switch {
		case c.Status == catalog.HealthCritical && status != catalog.HealthCritical,
			c.Status == catalog.HealthWarning && status == catalog.HealthPassing:
			status, worst = c.Status, c
		}
	}
	if worst == nil {
		return catalog.HealthPassing, "All checks passing."
	}
	return status, fmt.Sprintf("Aliased check %q is %s: %s", worst.CheckID, worst.Status, worst.Output)
}

// remoteAliasHealth is AliasHealth on a client agent, which has no catalog
// of its own: blocking reads of the node's checks through a server.
func (s aliasSource) remoteAliasHealth(ctx context.Context, node, serviceID string, lastIndex uint64) (string, string, uint64, error) {
	var minIndex uint64
	for {
		checksRes, err := server.NodeChecks.Call(ctx, s.a.servers, &rpc.NodeQuery{Node: node,
			QueryOptions: rpc.QueryOptions{MinIndex: minIndex, AllowStale: true}})
		if err != nil {
			return "", "", 0, err
		}
		svcRes, err := server.NodeServices.Call(ctx, s.a.servers, &rpc.NodeQuery{Node: node, QueryOptions: rpc.QueryOptions{AllowStale: true}})
		if err != nil {
			return "", "", 0, err
		}
		status, output := aliasFrom(node, serviceID, svcRes.Node, svcRes.Services, checksRes.Checks)
		h := fnv.New64a()
		fmt.Fprintf(h, "%s\x00%s", status, output)
		if idx := h.Sum64() | 1; idx != lastIndex {
			return status, output, idx, nil
		}
		minIndex = checksRes.Index
	}
}
