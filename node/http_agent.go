package node

import (
	"context"
	"net/http"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/node/config"
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
		Datacenter:        a.cfg.Datacenter,
	}
}

// waitSynced waits, boundedly, for the catalog to hold change gen.
func (a *Agent) waitSynced(r *http.Request, gen uint64) {
	ctx, cancel := context.WithTimeout(r.Context(), syncWait)
	defer cancel()
	a.sync.waitFor(ctx, gen)
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
	gen, err := a.addService(def, false, replace)
	a.stateMu.Unlock()
	if err != nil {
		return nil, err
	}
	a.waitSynced(r, gen)
	return nil, nil
}

// addService validates, persists and registers a service with its checks.
// Nothing is changed when it fails. The caller holds stateMu.
func (a *Agent) addService(def *config.ServiceDefinition, fromConfig, replaceChecks bool) (uint64, error) {
	if err := def.Validate(); err != nil {
		return 0, err
	}
	def.Normalize()
	var lcs []*localCheck
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
	ls := &localService{
		svc: &catalog.Service{
			ID: def.ID, Service: def.Name, Tags: def.Tags, Address: def.Address, Port: def.Port,
			Meta: def.Meta, Weights: weights, EnableTagOverride: def.EnableTagOverride,
		},
		def:        def,
		fromConfig: fromConfig,
	}
	if !fromConfig {
		if err := a.persist.saveService(def); err != nil {
			return 0, err
		}
	}
	if replaceChecks {
		keep := map[string]bool{}
		for _, lc := range lcs {
			keep[lc.chk.CheckID] = true
		}
		for _, c := range a.local.listChecks() {
			if c.ServiceID == def.ID && !keep[c.CheckID] {
				if _, _, err := a.removeCheck(c.CheckID); err != nil {
					a.logger.Warn("remove replaced check", "check", c.CheckID, "error", err)
				}
			}
		}
	}
	for _, lc := range lcs {
		a.startCheck(lc)
	}
	return a.local.addService(ls, lcs), nil
}

// buildCheck turns a validated, normalized check definition into local
// state. Only TTL checks run in this build; other kinds are refused with a
// message rather than registered and never run.
func (a *Agent) buildCheck(cd *config.CheckDefinition, fromConfig bool) (*localCheck, error) {
	typ := cd.Type()
	switch typ {
	case config.CheckTypeTTL:
	case config.CheckTypeScript:
		if !a.cfg.EnableScriptChecks && !(fromConfig && a.cfg.EnableLocalScriptChecks) {
			return nil, badRequest("%s: script checks are disabled; start the agent with -enable-script-checks", cd.ID)
		}
		return nil, badRequest("%s: %s checks are not supported by this build yet", cd.ID, typ)
	default:
		return nil, badRequest("%s: %s checks are not supported by this build yet", cd.ID, typ)
	}
	status := cd.Status
	if status == "" {
		status = catalog.HealthCritical
	}
	return &localCheck{
		chk: &catalog.Check{
			CheckID: cd.ID, Name: cd.Name, Notes: cd.Notes, ServiceID: cd.ServiceID,
			Status: status, Type: typ,
			Definition: catalog.CheckDefinition{
				TTL: cd.TTL, Interval: cd.Interval, Timeout: cd.Timeout,
				DeregisterCriticalServiceAfter: cd.DeregisterCriticalServiceAfter,
			},
		},
		def:        cd,
		fromConfig: fromConfig,
	}, nil
}

// startCheck restores the check's last status from an earlier run, if
// any, and attaches and starts its runner.
func (a *Agent) startCheck(lc *localCheck) {
	if st, err := a.persist.loadCheckState(lc.chk.CheckID); err != nil {
		a.logger.Warn("ignoring saved check state", "check", lc.chk.CheckID, "error", err)
	} else if st != nil && catalog.ValidStatus(st.Status) {
		lc.chk.Status, lc.chk.Output = st.Status, st.Output
	}
	if lc.def.TTL > 0 {
		// A restored status holds for one TTL: the application must be
		// heard from within it, as after any heartbeat.
		lc.ttl = checks.NewTTL(lc.chk.CheckID, lc.def.TTL, checkNotifier{a}, nil)
		lc.ttl.Start()
	}
}

// checkNotifier feeds check results into the agent.
type checkNotifier struct{ a *Agent }

func (n checkNotifier) UpdateCheck(id, status, output string) {
	n.a.setCheckStatus(id, status, output)
}

// setCheckStatus records a check's status and, when it changed, saves it
// so a restarted agent does not flip a healthy service to critical. One
// mutex orders the saves as the changes.
func (a *Agent) setCheckStatus(id, status, output string) (gen uint64, found bool) {
	a.checkStateMu.Lock()
	defer a.checkStateMu.Unlock()
	gen, found, changed := a.local.updateCheck(id, status, truncateOutput(output))
	if changed {
		if err := a.persist.saveCheckState(id, status, truncateOutput(output)); err != nil {
			a.logger.Warn("save check state", "check", id, "error", err)
		}
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
	if a.local.service(id) == nil {
		return 0, false, nil
	}
	if err := a.persist.removeService(id); err != nil {
		return 0, false, err
	}
	for _, c := range a.local.listChecks() {
		if c.ServiceID == id {
			if err := a.persist.removeCheck(c.CheckID); err != nil {
				return 0, false, err
			}
		}
	}
	gen, ok := a.local.removeService(id)
	return gen, ok, nil
}

func (a *Agent) agentService(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	svc := a.local.service(id)
	if svc == nil {
		return nil, notFound("unknown service ID: %s", id)
	}
	return a.toAgentService(svc), nil
}

func (a *Agent) agentServices(w http.ResponseWriter, r *http.Request) (any, error) {
	var list []agentService
	for _, s := range a.local.listServices() {
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
	list := a.local.listChecks()
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
		if s := a.local.service(c.ServiceID); s != nil {
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
	if def.ServiceID != "" && a.local.service(def.ServiceID) == nil {
		return 0, badRequest("ServiceID: no service %q is registered with this agent", def.ServiceID)
	}
	lc, err := a.buildCheck(def, false)
	if err != nil {
		return 0, err
	}
	if err := a.persist.saveCheck(def); err != nil {
		return 0, err
	}
	a.startCheck(lc)
	return a.local.addCheck(lc), nil
}

// removeCheck forgets a check locally and on disk. The caller holds
// stateMu.
func (a *Agent) removeCheck(id string) (uint64, bool, error) {
	if err := a.persist.removeCheck(id); err != nil {
		return 0, false, err
	}
	gen, ok := a.local.removeCheck(id)
	return gen, ok, nil
}

func (a *Agent) agentCheckDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	if c, _ := a.local.check(id); c == nil {
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

// heartbeat records a TTL check's status.
func (a *Agent) heartbeat(r *http.Request, id, status, output string) error {
	c, ttl := a.local.check(id)
	if c == nil {
		return notFound("Unknown check ID %q", id)
	}
	if ttl == nil {
		return badRequest("CheckID %q does not have an associated TTL", id)
	}
	ttl.SetStatus(status, output) // resets the TTL and reports through setCheckStatus
	gen, _ := a.setCheckStatus(id, status, output)
	a.waitSynced(r, gen)
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
		"Member": map[string]any{
			"Name":   a.cfg.NodeName,
			"Addr":   a.advertise.String(),
			"Port":   a.cfg.SerfLANPort,
			"Tags":   map[string]string{"role": "consul", "dc": a.cfg.Datacenter, "id": a.nodeID, "build": Version},
			"Status": 1,
		},
		"Meta":  orEmptyMap(a.cfg.NodeMeta),
		"Stats": map[string]any{"raft": a.raft.Stats()},
	}, nil
}

// Version is this build's version.
const Version = "0.1.0"
