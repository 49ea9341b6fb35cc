package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/node/config"
)

// Runner runs the agent's checks (checks.Runner).
type Runner interface {
	Add(def checks.Definition, status string) error
	Remove(id string)
	Heartbeat(id, status, output string) error
}

// RegistryConfig is what a Registry needs.
type RegistryConfig struct {
	// State is the agent's local state, which the Registry changes.
	State *State
	// Runner runs the checks registered.
	Runner Runner
	// DataDir keeps the registrations across restarts ("": kept in memory
	// only).
	DataDir string
	// EnableScriptChecks allows script checks from any source;
	// EnableLocalScriptChecks from config files only.
	EnableScriptChecks, EnableLocalScriptChecks bool
	Logger                                      *slog.Logger
}

// Registry is the agent's registrations: the services and checks it was
// given (config files, the HTTP API), kept in its data dir across
// restarts, put into the local State, and their checks run. Each change
// is one step with its save to disk. It is safe for concurrent use.
type Registry struct {
	cfg     RegistryConfig
	state   *State
	runner  Runner
	persist *persister
	states  *stateSaver
	logger  *slog.Logger

	// mu makes each change one step with its save to the data dir: a
	// register, a deregister and a reap of the same ID cannot interleave.
	mu sync.Mutex
}

// NewRegistry returns a Registry over cfg. It starts nothing: Run keeps
// the saved check states and reaps services.
func NewRegistry(cfg RegistryConfig) *Registry {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{cfg: cfg, state: cfg.State, runner: cfg.Runner, logger: cfg.Logger}
	if cfg.DataDir != "" {
		r.persist = &persister{dir: cfg.DataDir, logger: cfg.Logger}
	}
	r.states = newStateSaver(r.persist, cfg.Logger)
	return r
}

// Run saves check states and reaps services until ctx ends; it returns
// after writing the states still queued.
func (r *Registry) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.reapLoop(ctx) })
	r.states.run(ctx)
	wg.Wait()
}

// RegisterService validates, saves and registers a service with its
// checks (the HTTP API's; replaceChecks drops its checks the definition
// no longer has).
func (r *Registry) RegisterService(def *config.ServiceDefinition, replaceChecks bool) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addService(def, false, replaceChecks, false)
}

// DeregisterService forgets a service and its checks; found is false for
// an unknown ID.
func (r *Registry) DeregisterService(id string) (uint64, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removeService(id)
}

// RegisterCheck validates and registers a check that is not part of a
// service definition.
func (r *Registry) RegisterCheck(def *config.CheckDefinition) (uint64, error) {
	if err := def.Validate(); err != nil {
		return 0, err
	}
	def.Normalize()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addStandaloneCheck(def, false, false)
}

// DeregisterCheck forgets a check; found is false for an unknown ID.
func (r *Registry) DeregisterCheck(id string) (uint64, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Check(id) == nil {
		return 0, false, nil
	}
	return r.removeCheck(id)
}

// Heartbeat records a TTL check's status and restarts its TTL; the
// runner reports a change through UpdateCheck.
func (r *Registry) Heartbeat(id, status, output string) error {
	return r.runner.Heartbeat(id, status, truncateOutput(output))
}

// SetMaintenance enables or disables a maintenance check (a service's
// when serviceID is set); changed is false when nothing changed.
func (r *Registry) SetMaintenance(checkID, serviceID string, enable bool, reason string) (uint64, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.setMaintenanceLocked(checkID, serviceID, enable, reason)
}

// maxCheckOutput bounds the output kept for a check, as Consul's
// check_output_max_size.
const maxCheckOutput = 4096

// addService validates, persists and registers a service with its checks.
// Nothing is changed when it fails. restore applies the checks' saved
// status (on a restart). The caller holds r.mu.
func (r *Registry) addService(def *config.ServiceDefinition, fromConfig, replaceChecks, restore bool) (uint64, error) {
	if err := def.Validate(); err != nil {
		return 0, err
	}
	def.Normalize()
	var lcs []*Check
	for _, cd := range def.AllChecks() {
		lc, err := r.buildCheck(cd, fromConfig)
		if err != nil {
			return 0, err
		}
		lcs = append(lcs, lc)
	}
	weights := def.Weights.Catalog()
	svc := &catalog.Service{
		ID: def.ID, Service: def.Name, Tags: def.Tags, Address: def.Address, Port: def.Port,
		Meta: def.Meta, Weights: weights, EnableTagOverride: def.EnableTagOverride,
		DNS: def.DNS.Catalog(),
	}
	if !fromConfig && !restore { // a restored one is on disk as it is
		if err := r.persist.saveService(def); err != nil {
			return 0, err
		}
	}
	if replaceChecks {
		keep := map[string]bool{}
		for _, lc := range lcs {
			keep[lc.Check.CheckID] = true
		}
		for _, c := range r.state.Checks() {
			if c.ServiceID == def.ID && !keep[c.CheckID] {
				if _, _, err := r.removeCheck(c.CheckID); err != nil {
					r.logger.Warn("remove replaced check", "check", c.CheckID, "error", err)
				}
			}
		}
	}
	for _, lc := range lcs {
		r.prepareCheck(lc, restore)
	}
	gen := r.state.AddService(svc, lcs)
	for _, lc := range lcs {
		r.runCheck(lc)
	}
	return gen, nil
}

// buildCheck turns a validated, normalized check definition into local
// state. Script checks run only when enabled for the definition's source:
// -enable-script-checks for any, enable_local_script_checks for config
// files only, so a remote caller gets no code execution by default.
func (r *Registry) buildCheck(cd *config.CheckDefinition, fromConfig bool) (*Check, error) {
	typ := cd.Type()
	if typ == config.CheckTypeScript && !r.cfg.EnableScriptChecks && !(fromConfig && r.cfg.EnableLocalScriptChecks) {
		return nil, &config.FieldError{Path: cd.ID, Err: errors.New("script checks are disabled; start the agent with -enable-script-checks")}
	}
	if typ == config.CheckTypeHTTP && cd.Method == "" {
		cd.Method = http.MethodGet
	}
	status := cd.Status
	if status == "" {
		status = catalog.HealthCritical
	}
	return &Check{
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
func (r *Registry) prepareCheck(lc *Check, restore bool) {
	if !restore {
		r.states.forget(lc.Check.CheckID)
		return
	}
	if lc.Def.Status != "" {
		return
	}
	st, err := r.persist.loadCheckState(lc.Check.CheckID)
	if err != nil {
		r.logger.Warn("ignoring saved check state", "check", lc.Check.CheckID, "error", err)
		return
	}
	if st != nil && catalog.ValidStatus(st.Status) {
		lc.Check.Status, lc.Check.Output = st.Status, st.Output
	}
}

// runCheck hands a check that is already in the local state to the
// runner, starting from the status the local state shows. A restored TTL
// status holds for one TTL: the application must be heard from within it.
func (r *Registry) runCheck(lc *Check) {
	c := r.state.Check(lc.Check.CheckID)
	if c == nil {
		return
	}
	if err := r.runner.Add(runnerDefinition(lc.Def), c.Status); err != nil {
		r.logger.Error("cannot run check", "check", lc.Check.CheckID, "error", err)
	}
}

// UpdateCheck takes a check's result from the runner (checks.Notifier).
func (r *Registry) UpdateCheck(id, status, output string) {
	r.setCheckStatus(id, status, output)
}

// setCheckStatus records a check's status; a change of status is also
// saved, so a restarted agent does not flip a healthy service to critical.
func (r *Registry) setCheckStatus(id, status, output string) (gen uint64, found bool) {
	gen, found, changed := r.state.UpdateCheck(id, status, truncateOutput(output))
	if changed {
		r.states.save(id, status, truncateOutput(output))
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
// The caller holds r.mu.
func (r *Registry) removeService(id string) (uint64, bool, error) {
	if r.state.Service(id) == nil {
		return 0, false, nil
	}
	if err := r.persist.removeService(id); err != nil {
		return 0, false, err
	}
	for _, c := range r.state.Checks() {
		if c.ServiceID == id {
			r.runner.Remove(c.CheckID)
			if err := r.persist.removeCheck(c.CheckID); err != nil {
				return 0, false, err
			}
			r.states.forget(c.CheckID)
		}
	}
	gen, ok := r.state.RemoveService(id)
	return gen, ok, nil
}

// addStandaloneCheck registers a check that is not part of a service
// definition. The caller holds r.mu.
func (r *Registry) addStandaloneCheck(def *config.CheckDefinition, fromConfig, restore bool) (uint64, error) {
	if def.ServiceID != "" && r.state.Service(def.ServiceID) == nil {
		return 0, &config.FieldError{Path: "ServiceID", Err: fmt.Errorf("no service %q is registered with this agent", def.ServiceID)}
	}
	lc, err := r.buildCheck(def, fromConfig)
	if err != nil {
		return 0, err
	}
	if !fromConfig && !restore {
		if err := r.persist.saveCheck(def); err != nil {
			return 0, err
		}
	}
	r.prepareCheck(lc, restore)
	gen := r.state.AddCheck(lc)
	r.runCheck(lc)
	return gen, nil
}

// removeCheck forgets a check locally and on disk. The caller holds
// r.mu.
func (r *Registry) removeCheck(id string) (uint64, bool, error) {
	r.runner.Remove(id) // first: no result of it arrives after this
	if err := r.persist.removeCheck(id); err != nil {
		return 0, false, err
	}
	r.states.forget(id)
	gen, ok := r.state.RemoveCheck(id)
	return gen, ok, nil
}

// Load registers the config-file services and checks and the
// ones persisted by earlier runs.
func (r *Registry) Load(services []*config.ServiceDefinition, checkDefs []*config.CheckDefinition) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, def := range services {
		if _, err := r.addService(def, true, false, true); err != nil {
			return fmt.Errorf("service %q from config: %w", def.ID, err)
		}
	}
	for _, def := range checkDefs {
		if _, err := r.addStandaloneCheck(def, true, true); err != nil {
			return fmt.Errorf("check %q from config: %w", def.ID, err)
		}
	}
	svcs, err := r.persist.loadServices()
	if err != nil {
		return err
	}
	for _, def := range svcs {
		if r.state.Service(def.ID) != nil {
			continue // the config file's definition wins
		}
		if _, err := r.addService(def, false, false, true); err != nil {
			r.logger.Warn("skipping a persisted service", "id", def.ID, "error", err)
		}
	}
	if err := r.restoreMaintenance(); err != nil {
		return err
	}
	chks, err := r.persist.loadChecks()
	if err != nil {
		return err
	}
	for _, def := range chks {
		if r.state.Check(def.ID) != nil {
			continue
		}
		if err := def.Validate(); err != nil {
			r.logger.Warn("skipping a persisted check", "id", def.ID, "error", err)
			continue
		}
		def.Normalize()
		if _, err := r.addStandaloneCheck(def, false, true); err != nil {
			r.logger.Warn("skipping a persisted check", "id", def.ID, "error", err)
		}
	}
	return nil
}
