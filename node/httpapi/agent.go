package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/catalog/balance"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/node/config"
)

// Agent is the local agent as the /v1/agent endpoints change it. Each
// change returns the generation of the local state it made, which the
// handler waits (boundedly) for the catalog to hold.
type Agent interface {
	// RegisterService validates, saves and registers a service with its
	// checks; nothing changes when it fails.
	RegisterService(def *config.ServiceDefinition, replaceChecks bool) (gen uint64, err error)
	// DeregisterService and DeregisterCheck report found false for an
	// unknown ID.
	DeregisterService(id string) (gen uint64, found bool, err error)
	// RegisterCheck validates and registers a check that is not part of
	// a service definition.
	RegisterCheck(def *config.CheckDefinition) (gen uint64, err error)
	DeregisterCheck(id string) (gen uint64, found bool, err error)
	// Heartbeat records a TTL check's status and restarts its TTL; it
	// fails with checks.ErrUnknownCheck, ErrNotTTL or ErrInvalidStatus.
	Heartbeat(id, status, output string) error
	// SetMaintenance enables or disables a maintenance check (a service's
	// when serviceID is set); changed is false when nothing changed.
	SetMaintenance(checkID, serviceID string, enable bool, reason string) (gen uint64, changed bool, err error)
	// Leave leaves the cluster gracefully.
	Leave(ctx context.Context) error
	// Self is agent/self's answer.
	Self() any
}

// Local reads the agent's own services and checks (node/local.State).
type Local interface {
	Service(id string) *catalog.Service
	Services() []*catalog.Service
	Check(id string) *catalog.Check
	Checks() []*catalog.Check
	CurrentGen() uint64
	// WaitFor blocks until the catalog holds every change up to gen, or
	// ctx ends.
	WaitFor(ctx context.Context, gen uint64) bool
}

// Members is the agent's view of its gossip pools: the LAN one, and with
// wan a server's WAN pool.
type Members interface {
	Members(wan bool) ([]Member, error)
	Join(addr string, wan bool) error
	// ForceLeave answers a name the pool does not know with a 404 Error.
	ForceLeave(node string, prune, wan bool) error
	// Distance estimates round-trip times from node near by the network
	// coordinates; nil when near has none.
	Distance(near string) balance.Distance
}

// Member is one entry of agent/members, as Consul's api.AgentMember.
type Member struct {
	Name        string
	Addr        string
	Port        uint16
	Tags        map[string]string
	Status      int
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

// syncWait bounds how long a local registration waits for the catalog to
// take it before answering: long enough that a lookup right after a
// register finds it, short enough that an unreachable server does not
// stall the application (the sync goes on in the background).
const syncWait = 2 * time.Second

func (h *API) agentRoutes(handle handleFunc) {
	handle(write, "/v1/agent/service/register", h.agentServiceRegister)
	handle(write, "/v1/agent/service/deregister/{id...}", h.agentServiceDeregister)
	handle(read, "/v1/agent/service/{id...}", h.agentService)
	handle(read, "/v1/agent/services", h.agentServices)
	handle(read, "/v1/agent/checks", h.agentChecks)
	handle(write, "/v1/agent/check/register", h.agentCheckRegister)
	handle(write, "/v1/agent/check/deregister/{id...}", h.agentCheckDeregister)
	handle(write, "/v1/agent/check/pass/{id...}", h.agentCheckTTL(catalog.HealthPassing))
	handle(write, "/v1/agent/check/warn/{id...}", h.agentCheckTTL(catalog.HealthWarning))
	handle(write, "/v1/agent/check/fail/{id...}", h.agentCheckTTL(catalog.HealthCritical))
	handle(write, "/v1/agent/check/update/{id...}", h.agentCheckUpdate)
	handle(read, "/v1/agent/self", h.agentSelf)
	handle(read, "/v1/agent/metrics", h.agentMetrics)
	handle(write, "/v1/agent/service/maintenance/{id...}", h.agentServiceMaintenance)
	handle(write, "/v1/agent/maintenance", h.agentNodeMaintenance)
	handle(read, "/v1/agent/members", h.agentMembers)
	handle(write, "/v1/agent/join/{address...}", h.agentJoin)
	handle(write, "/v1/agent/leave", h.agentLeave)
	handle(write, "/v1/agent/force-leave/{node...}", h.agentForceLeave)
}

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

func (h *API) toAgentService(s *catalog.Service) agentService {
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
		Datacenter:        h.cfg.Datacenter,
	}
}

// waitSynced waits, boundedly, for the catalog to hold change gen.
func (h *API) waitSynced(r *http.Request, gen uint64) {
	ctx, cancel := context.WithTimeout(r.Context(), syncWait)
	defer cancel()
	h.local.WaitFor(ctx, gen)
}

func (h *API) agentServiceRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	def := &config.ServiceDefinition{}
	if err := decodeBody(r, w, def); err != nil {
		return nil, err
	}
	replace, err := queryFlag(r, "replace-existing-checks")
	if err != nil {
		return nil, err
	}
	gen, err := h.agent.RegisterService(def, replace)
	if err != nil {
		return nil, err
	}
	h.waitSynced(r, gen)
	return nil, nil
}

func (h *API) agentServiceDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	gen, ok, err := h.agent.DeregisterService(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)
	}
	h.waitSynced(r, gen)
	return nil, nil
}

func (h *API) agentService(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	svc := h.local.Service(id)
	if svc == nil {
		return nil, notFound("unknown service ID: %s", id)
	}
	return h.toAgentService(svc), nil
}

func (h *API) agentServices(w http.ResponseWriter, r *http.Request) (any, error) {
	var list []agentService
	for _, s := range h.local.Services() {
		list = append(list, h.toAgentService(s))
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

func (h *API) agentChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	list := h.local.Checks()
	for _, c := range list {
		h.presentCheck(c)
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
func (h *API) presentCheck(c *catalog.Check) {
	c.Node = h.cfg.NodeName
	if c.ServiceID != "" {
		if s := h.local.Service(c.ServiceID); s != nil {
			c.ServiceName, c.ServiceTags = s.Service, orEmpty(s.Tags)
		}
	}
	c.ServiceTags = orEmpty(c.ServiceTags)
}

func (h *API) agentCheckRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	def := &config.CheckDefinition{}
	if err := decodeBody(r, w, def); err != nil {
		return nil, err
	}
	gen, err := h.agent.RegisterCheck(def)
	if err != nil {
		return nil, err
	}
	h.waitSynced(r, gen)
	return nil, nil
}

func (h *API) agentCheckDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	gen, ok, err := h.agent.DeregisterCheck(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("Unknown check ID %q", id)
	}
	h.waitSynced(r, gen)
	return nil, nil
}

func (h *API) agentCheckTTL(status string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, h.heartbeat(r, r.PathValue("id"), status, r.URL.Query().Get("note"))
	}
}

// heartbeat records a TTL check's status and restarts its TTL.
func (h *API) heartbeat(r *http.Request, id, status, output string) error {
	err := h.agent.Heartbeat(id, status, output)
	switch {
	case errors.Is(err, checks.ErrUnknownCheck):
		if h.local.Check(id) != nil {
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
	// The runner has reported the change (if any) to the local state.
	h.waitSynced(r, h.local.CurrentGen())
	return nil
}

func (h *API) agentCheckUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
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
	return nil, h.heartbeat(r, r.PathValue("id"), body.Status, body.Output)
}

func (h *API) agentSelf(w http.ResponseWriter, r *http.Request) (any, error) {
	return h.agent.Self(), nil
}

func (h *API) agentServiceMaintenance(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	enable, err := maintenanceFlag(r)
	if err != nil {
		return nil, err
	}
	if h.local.Service(id) == nil {
		return nil, notFound("Unknown service ID %q", id)
	}
	return nil, h.setMaintenance(r, catalog.ServiceMaintPrefix+id, id, enable)
}

func (h *API) agentNodeMaintenance(w http.ResponseWriter, r *http.Request) (any, error) {
	enable, err := maintenanceFlag(r)
	if err != nil {
		return nil, err
	}
	return nil, h.setMaintenance(r, catalog.NodeMaintCheckID, "", enable)
}

// maintenanceFlag reads ?enable, which Consul requires.
func maintenanceFlag(r *http.Request) (bool, error) {
	if _, ok := r.URL.Query()["enable"]; !ok || r.URL.Query().Get("enable") == "" {
		return false, badRequest("Missing value for enable")
	}
	return queryFlag(r, "enable")
}

func (h *API) setMaintenance(r *http.Request, checkID, serviceID string, enable bool) error {
	gen, changed, err := h.agent.SetMaintenance(checkID, serviceID, enable, r.URL.Query().Get("reason"))
	if err == nil && changed {
		h.waitSynced(r, gen)
	}
	return err
}

func (h *API) agentMembers(w http.ResponseWriter, r *http.Request) (any, error) {
	wan, err := queryFlag(r, "wan")
	if err != nil {
		return nil, err
	}
	return h.members.Members(wan)
}

func (h *API) agentJoin(w http.ResponseWriter, r *http.Request) (any, error) {
	wan, err := queryFlag(r, "wan")
	if err != nil {
		return nil, err
	}
	return nil, h.members.Join(r.PathValue("address"), wan)
}

func (h *API) agentLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	return nil, h.agent.Leave(r.Context())
}

func (h *API) agentForceLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	prune, err := queryFlag(r, "prune")
	if err != nil {
		return nil, err
	}
	wan, err := queryFlag(r, "wan")
	if err != nil {
		return nil, err
	}
	return nil, h.members.ForceLeave(r.PathValue("node"), prune, wan)
}
