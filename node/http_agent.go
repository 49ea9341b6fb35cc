package node

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/local"
)

// syncWait bounds how long a local registration waits for the catalog to
// take it before answering: long enough that a lookup right after a
// register finds it, short enough that an unreachable server does not
// stall the application (the sync goes on in the background).
const syncWait = 2 * time.Second

// maxCheckOutput bounds the output kept for a check, as Consul's
// check_output_max_size.
const maxCheckOutput = 4096

// agentService is Consul's AgentService as the agent endpoints write it.
type agentService struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	Weights           catalog.Weights
	EnableTagOverride bool
	DNS               catalog.ServiceDNS `json:",omitzero"`
	Datacenter        string
}

func (a *Agent) toAgentService(s *catalog.Service) agentService {
	return agentService{
		ID:                s.ID,
		Service:           s.Service,
		Tags:              orEmpty(s.Tags),
		Meta:              orEmptyMap(s.Meta),
		Port:              s.Port,
		Address:           s.Address,
		Weights:           s.Weights,
		EnableTagOverride: s.EnableTagOverride,
		DNS:               s.DNS,
		Datacenter:        a.cfg.Datacenter,
	}
}

// serviceDNS converts a definition's DNS block for the catalog.
func serviceDNS(d *config.ServiceDNS) catalog.ServiceDNS {
	if d == nil {
		return catalog.ServiceDNS{}
	}
	return catalog.ServiceDNS{Single: d.Single}
}

// waitSynced waits, boundedly, for the catalog to hold change gen.
func (a *Agent) waitSynced(r *http.Request, gen uint64) {
	ctx, cancel := context.WithTimeout(r.Context(), syncWait)
	defer cancel()
	a.local.WaitFor(ctx, gen)
}

func (a *Agent) agentServiceRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	def := &config.ServiceDefinition{}
	if err := decodeBody(r, w, def); err != nil {
		return nil, err
	}
	replace, err := queryFlag(r, "replace-existing-checks")
	if err != nil {
		return nil, err
	}
	a.stateMu.Lock()
	gen, err := a.addService(def, false, replace, false)
	a.stateMu.Unlock()
	if err != nil {
		return nil, err
	}
	a.waitSynced(r, gen)
	return nil, nil
}

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
		DNS: serviceDNS(def.DNS),
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
		return nil, badRequest("%s: script checks are disabled; start the agent with -enable-script-checks", cd.ID)
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

func (a *Agent) agentServiceDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	a.stateMu.Lock()
	gen, ok, err := a.removeService(id)
	a.stateMu.Unlock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)
	}
	a.waitSynced(r, gen)
	return nil, nil
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

func (a *Agent) agentService(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	svc := a.local.Service(id)
	if svc == nil {
		return nil, notFound("unknown service ID: %s", id)
	}
	return a.toAgentService(svc), nil
}

func (a *Agent) agentServices(w http.ResponseWriter, r *http.Request) (any, error) {
	var list []agentService
	for _, s := range a.local.Services() {
		list = append(list, a.toAgentService(s))
	}
	list, err := catalog.Filter(r.URL.Query().Get("filter"), list)
	if err != nil {
		return nil, err
	}
	out := make(map[string]agentService, len(list))
	for _, s := range list {
		out[s.ID] = s
	}
	return out, nil
}

func (a *Agent) agentChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	list := a.local.Checks()
	for _, c := range list {
		a.presentCheck(c)
	}
	list, err := catalog.Filter(r.URL.Query().Get("filter"), list)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*catalog.Check, len(list))
	for _, c := range list {
		out[c.CheckID] = c
	}
	return out, nil
}

// presentCheck fills what the catalog would derive for a local check.
func (a *Agent) presentCheck(c *catalog.Check) {
	c.Node = a.cfg.NodeName
	if c.ServiceID != "" {
		if s := a.local.Service(c.ServiceID); s != nil {
			c.ServiceName, c.ServiceTags = s.Service, orEmpty(s.Tags)
		}
	}
	c.ServiceTags = orEmpty(c.ServiceTags)
}

func (a *Agent) agentCheckRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	def := &config.CheckDefinition{}
	if err := decodeBody(r, w, def); err != nil {
		return nil, err
	}
	if err := def.Validate(); err != nil {
		return nil, err
	}
	def.Normalize()
	a.stateMu.Lock()
	gen, err := a.addCheck(def)
	a.stateMu.Unlock()
	if err != nil {
		return nil, err
	}
	a.waitSynced(r, gen)
	return nil, nil
}

// addCheck registers a standalone check from the API; the caller holds
// stateMu.
func (a *Agent) addCheck(def *config.CheckDefinition) (uint64, error) {
	return a.addStandaloneCheck(def, false, false)
}

// addStandaloneCheck registers a check that is not part of a service
// definition. The caller holds stateMu.
func (a *Agent) addStandaloneCheck(def *config.CheckDefinition, fromConfig, restore bool) (uint64, error) {
	if def.ServiceID != "" && a.local.Service(def.ServiceID) == nil {
		return 0, badRequest("ServiceID: no service %q is registered with this agent", def.ServiceID)
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

func (a *Agent) agentCheckDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	if a.local.Check(id) == nil {
		return nil, notFound("Unknown check ID %q", id)
	}
	gen, ok, err := a.removeCheck(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("Unknown check ID %q", id)
	}
	a.waitSynced(r, gen)
	return nil, nil
}

func (a *Agent) agentCheckTTL(status string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, a.heartbeat(r, r.PathValue("id"), status, r.URL.Query().Get("note"))
	}
}

// heartbeat records a TTL check's status and restarts its TTL.
func (a *Agent) heartbeat(r *http.Request, id, status, output string) error {
	err := a.runner.Heartbeat(id, status, truncateOutput(output))
	switch {
	case errors.Is(err, checks.ErrUnknownCheck):
		if a.local.Check(id) != nil {
			return badRequest("CheckID %q does not have an associated TTL", id)
		}
		return notFound("Unknown check ID %q", id)
	case errors.Is(err, checks.ErrNotTTL):
		return badRequest("CheckID %q does not have an associated TTL", id)
	case errors.Is(err, checks.ErrInvalidStatus):
		return badRequest("Status: invalid check status %q", status)
	case err != nil:
		return err
	}
	// The runner has reported the change (if any) through setCheckStatus.
	a.waitSynced(r, a.local.CurrentGen())
	return nil
}

func (a *Agent) agentCheckUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct {
		Status string
		Output string
	}
	if err := decodeBody(r, w, &body); err != nil {
		return nil, err
	}
	if !catalog.ValidStatus(body.Status) {
		return nil, badRequest("Status: invalid check status %q", body.Status)
	}
	return nil, a.heartbeat(r, r.PathValue("id"), body.Status, body.Output)
}

func (a *Agent) agentSelf(w http.ResponseWriter, r *http.Request) (any, error) {
	var member any = map[string]any{"Name": a.cfg.NodeName, "Addr": a.advertise.String(), "Port": a.cfg.SerfLANPort, "Status": 1}
	if a.gossip != nil {
		member = toAgentMember(a.gossip.LocalMember())
	}
	stats := map[string]any{}
	if a.raft != nil {
		stats["raft"] = a.raft.Stats()
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
		"Meta":   orEmptyMap(a.cfg.NodeMeta),
		"Stats":  stats,
	}, nil
}

// Version is this build's version.
const Version = "0.1.0"
