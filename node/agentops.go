package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/local"
)

// maxCheckOutput bounds the output kept for a check, as Consul's
// check_output_max_size.
const maxCheckOutput = 4096

// addService validates, persists and registers a service with its checks.
// Nothing is changed when it fails. restore applies the checks' saved
// status (on a restart). The caller holds stateMu.
func (a *Agent) addService(def *config.ServiceDefinition, fromConfig, replaceChecks, restore bool) (uint64, error) {
	if err := def.Validate(); err != nil {
		return 0, err
	}
	def.Normalize()
	var lcs []*local.Check
	for _, cd := range def.AllChecks() {
		lc, err := a.buildCheck(cd, fromConfig)
		if err != nil {
			return 0, err
		}
		lcs = append(lcs, lc)
	}
	weights := catalog.DefaultWeights
	if def.Weights != nil {
		weights = catalog.Weights{Passing: def.Weights.Passing, Warning: def.Weights.Warning}
	}
	svc := &catalog.Service{
		ID: def.ID, Service: def.Name, Tags: def.Tags, Address: def.Address, Port: def.Port,
		Meta: def.Meta, Weights: weights, EnableTagOverride: def.EnableTagOverride,
		DNS: def.DNS.Catalog(),
	}
	if !fromConfig {
		if err := a.persist.saveService(def); err != nil {
			return 0, err
		}
	}
	if replaceChecks {
		keep := map[string]bool{}
		for _, lc := range lcs {
			keep[lc.Check.CheckID] = true
		}
		for _, c := range a.local.Checks() {
			if c.ServiceID == def.ID && !keep[c.CheckID] {
				if _, _, err := a.removeCheck(c.CheckID); err != nil {
					a.logger.Warn("remove replaced check", "check", c.CheckID, "error", err)
				}
			}
		}
	}
	for _, lc := range lcs {
		a.prepareCheck(lc, restore)
	}
	gen := a.local.AddService(svc, lcs)
	for _, lc := range lcs {
		a.runCheck(lc)
	}
	return gen, nil
}

// buildCheck turns a validated, normalized check definition into local
// state. Script checks run only when enabled for the definition's source:
// -enable-script-checks for any, enable_local_script_checks for config
// files only, so a remote caller gets no code execution by default.
func (a *Agent) buildCheck(cd *config.CheckDefinition, fromConfig bool) (*local.Check, error) {
	typ := cd.Type()
	if typ == config.CheckTypeScript && !a.cfg.EnableScriptChecks && !(fromConfig && a.cfg.EnableLocalScriptChecks) {
		return nil, &config.FieldError{Path: cd.ID, Err: errors.New("script checks are disabled; start the agent with -enable-script-checks")}
	}
	if typ == config.CheckTypeHTTP && cd.Method == "" {
		cd.Method = http.MethodGet
	}
	status := cd.Status
	if status == "" {
		status = catalog.HealthCritical
	}
	return &local.Check{
		Check: &catalog.Check{
			CheckID: cd.ID, Name: cd.Name, Notes: cd.Notes, ServiceID: cd.ServiceID,
			Status: status, Type: typ,
			Definition: catalog.CheckDefinition{
				HTTP: cd.HTTP, Header: cd.Header, Method: cd.Method, Body: cd.Body, TLSSkipVerify: cd.TLSSkipVerify,
				TCP: cd.TCP, GRPC: cd.GRPC,
				TTL: cd.TTL, Interval: cd.Interval, Timeout: cd.Timeout,
				DeregisterCriticalServiceAfter: cd.DeregisterCriticalServiceAfter,
			},
		},
		Def: cd,
	}, nil
}

// runnerDefinition maps a check definition onto the runner's.
func runnerDefinition(cd *config.CheckDefinition) checks.Definition {
	return checks.Definition{
		ID: cd.ID, HTTP: cd.HTTP, Method: cd.Method, Header: cd.Header, Body: cd.Body, TLSSkipVerify: cd.TLSSkipVerify,
		TCP: cd.TCP, Args: cd.Args, GRPC: cd.GRPC, GRPCUseTLS: cd.GRPCUseTLS, TTL: cd.TTL,
		AliasService: cd.AliasService, AliasNode: cd.AliasNode,
		Interval: cd.Interval, Timeout: cd.Timeout,
		FailuresBeforeCritical: cd.FailuresBeforeCritical, SuccessBeforePassing: cd.SuccessBeforePassing,
		FlapThreshold: cd.FlapThreshold, FlapWindow: cd.FlapWindow,
		OutputMaxSize: maxCheckOutput,
	}
}

// prepareCheck settles a check's starting status. On a restart (restore)
// a check whose definition sets no status gets the one it had, so a
// healthy service is not flipped to critical by the restart; a check
// registered anew starts from its definition and forgets any saved status.
func (a *Agent) prepareCheck(lc *local.Check, restore bool) {
	if !restore {
		a.states.forget(lc.Check.CheckID)
		return
	}
	if lc.Def.Status != "" {
		return
	}
	st, err := a.persist.loadCheckState(lc.Check.CheckID)
	if err != nil {
		a.logger.Warn("ignoring saved check state", "check", lc.Check.CheckID, "error", err)
		return
	}
	if st != nil && catalog.ValidStatus(st.Status) {
		lc.Check.Status, lc.Check.Output = st.Status, st.Output
	}
}

// runCheck hands a check that is already in the local state to the
// runner, starting from the status the local state shows. A restored TTL
// status holds for one TTL: the application must be heard from within it.
func (a *Agent) runCheck(lc *local.Check) {
	c := a.local.Check(lc.Check.CheckID)
	if c == nil {
		return
	}
	if err := a.runner.Add(runnerDefinition(lc.Def), c.Status); err != nil {
		a.logger.Error("cannot run check", "check", lc.Check.CheckID, "error", err)
	}
}

// checkNotifier feeds check results into the agent.
type checkNotifier struct{ a *Agent }

func (n checkNotifier) UpdateCheck(id, status, output string) {
	n.a.setCheckStatus(id, status, output)
}

// setCheckStatus records a check's status; a change of status is also
// saved, so a restarted agent does not flip a healthy service to critical.
func (a *Agent) setCheckStatus(id, status, output string) (gen uint64, found bool) {
	gen, found, changed := a.local.UpdateCheck(id, status, truncateOutput(output))
	if changed {
		a.states.save(id, status, truncateOutput(output))
	}
	return gen, found
}

func truncateOutput(s string) string {
	if len(s) <= maxCheckOutput {
		return s
	}
	return s[:maxCheckOutput] + "\n... (output truncated)"
}

// removeService forgets a service and its checks, on disk and locally.
// The caller holds stateMu.
func (a *Agent) removeService(id string) (uint64, bool, error) {
	if a.local.Service(id) == nil {
		return 0, false, nil
	}
	if err := a.persist.removeService(id); err != nil {
		return 0, false, err
	}
	for _, c := range a.local.Checks() {
		if c.ServiceID == id {
			a.runner.Remove(c.CheckID)
			if err := a.persist.removeCheck(c.CheckID); err != nil {
				return 0, false, err
			}
			a.states.forget(c.CheckID)
		}
	}
	gen, ok := a.local.RemoveService(id)
	return gen, ok, nil
}

// addStandaloneCheck registers a check that is not part of a service
// definition. The caller holds stateMu.
func (a *Agent) addStandaloneCheck(def *config.CheckDefinition, fromConfig, restore bool) (uint64, error) {
	if def.ServiceID != "" && a.local.Service(def.ServiceID) == nil {
		return 0, &config.FieldError{Path: "ServiceID", Err: fmt.Errorf("no service %q is registered with this agent", def.ServiceID)}
	}
	lc, err := a.buildCheck(def, fromConfig)
	if err != nil {
		return 0, err
	}
	if !fromConfig {
		if err := a.persist.saveCheck(def); err != nil {
			return 0, err
		}
	}
	a.prepareCheck(lc, restore)
	gen := a.local.AddCheck(lc)
	a.runCheck(lc)
	return gen, nil
}

// removeCheck forgets a check locally and on disk. The caller holds
// stateMu.
func (a *Agent) removeCheck(id string) (uint64, bool, error) {
	a.runner.Remove(id) // first: no result of it arrives after this
	if err := a.persist.removeCheck(id); err != nil {
		return 0, false, err
	}
	a.states.forget(id)
	gen, ok := a.local.RemoveCheck(id)
	return gen, ok, nil
}

// Version is this build's version.
const Version = "0.1.0"

// agentOps is the agent as the HTTP API changes it (httpapi.Agent): each
// change of the local state is one step with its save to the data dir.
type agentOps struct{ a *Agent }

func (o agentOps) RegisterService(def *config.ServiceDefinition, replaceChecks bool) (uint64, error) {
	o.a.stateMu.Lock()
	defer o.a.stateMu.Unlock()
	return o.a.addService(def, false, replaceChecks, false)
}

func (o agentOps) DeregisterService(id string) (uint64, bool, error) {
	o.a.stateMu.Lock()
	defer o.a.stateMu.Unlock()
	return o.a.removeService(id)
}

func (o agentOps) RegisterCheck(def *config.CheckDefinition) (uint64, error) {
	o.a.stateMu.Lock()
	defer o.a.stateMu.Unlock()
	return o.a.addStandaloneCheck(def, false, false)
}

func (o agentOps) DeregisterCheck(id string) (uint64, bool, error) {
	o.a.stateMu.Lock()
	defer o.a.stateMu.Unlock()
	if o.a.local.Check(id) == nil {
		return 0, false, nil
	}
	return o.a.removeCheck(id)
}

// Heartbeat records a TTL check's status and restarts its TTL; the
// runner reports a change through setCheckStatus.
func (o agentOps) Heartbeat(id, status, output string) error {
	return o.a.runner.Heartbeat(id, status, truncateOutput(output))
}

func (o agentOps) SetMaintenance(checkID, serviceID string, enable bool, reason string) (uint64, bool, error) {
	o.a.stateMu.Lock()
	defer o.a.stateMu.Unlock()
	return o.a.setMaintenanceLocked(checkID, serviceID, enable, reason)
}

func (o agentOps) Leave(ctx context.Context) error { return o.a.Leave(ctx) }

func (o agentOps) Self() any {
	a := o.a
	var member any = map[string]any{"Name": a.cfg.NodeName, "Addr": a.advertise.String(), "Port": a.cfg.SerfLANPort, "Status": 1}
	if a.gossip != nil {
		member = toAgentMember(a.gossip.LocalMember())
	}
	stats := map[string]any{}
	if a.raft != nil {
		stats["raft"] = a.raft.Stats()
	}
	meta := a.cfg.NodeMeta
	if meta == nil {
		meta = map[string]string{}
	}
	return map[string]any{
		"Config": map[string]any{
			"Datacenter":        a.cfg.Datacenter,
			"PrimaryDatacenter": a.cfg.Datacenter,
			"NodeName":          a.cfg.NodeName,
			"NodeID":            a.nodeID,
			"Server":            a.cfg.ServerMode,
			"Version":           Version,
			"Revision":          "",
		},
		"Member": member,
		"Meta":   meta,
		"Stats":  stats,
	}
}
