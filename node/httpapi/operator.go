package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// Operator is a server's consensus, as the operator endpoints read and
// change it.
type Operator interface {
	// RaftConfiguration is the Raft configuration, each server named by
	// its node where gossip knows it, and the index it was committed at.
	RaftConfiguration() ([]RaftServer, uint64, error)
	SaveSnapshot(w io.Writer) error
	// RestoreSnapshot fails with consensus.ErrBadSnapshot for an archive
	// it cannot read.
	RestoreSnapshot(r io.Reader) error
}

func (h *API) operatorRoutes(handle handleFunc) {
	handle(read, "/v1/operator/raft/configuration", h.operatorRaftConfiguration)
	handle("DELETE", "/v1/operator/raft/peer", h.operatorRaftRemovePeer)
	handle(read, "/v1/operator/autopilot/health", h.operatorAutopilotHealth)
	handle(read, "/v1/operator/autopilot/configuration", h.operatorAutopilotGetConfiguration)
	handle("PUT", "/v1/operator/autopilot/configuration", h.operatorAutopilotSetConfiguration)
	handle(read, "/v1/snapshot", h.snapshotSave)
	handle("PUT", "/v1/snapshot", h.snapshotRestore)
}

// RaftServer is one entry of operator/raft/configuration, as Consul's.
type RaftServer struct {
	ID              string
	Node            string
	Address         string
	Leader          bool
	ProtocolVersion string
	Voter           bool
}

func (h *API) operatorRaftConfiguration(w http.ResponseWriter, r *http.Request) (any, error) {
	if h.operator == nil {
		return nil, &httpError{http.StatusInternalServerError, "not a server"}
	}
	servers, index, err := h.operator.RaftConfiguration()
	if err != nil {
		return nil, err
	}
	return struct {
		Servers []RaftServer
		Index   uint64
	}{servers, index}, nil
}

// operatorRaftRemovePeer answers DELETE /v1/operator/raft/peer?id=… or
// ?address=…, with Consul's texts.
func (h *API) operatorRaftRemovePeer(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	_, hasID := q["id"]
	_, hasAddress := q["address"]
	switch {
	case !hasID && !hasAddress:
		return nil, badRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove")
	case hasID && hasAddress:
		return nil, badRequest("Must specify only one of ?id or ?address")
	case hasID && q.Get("id") == "", hasAddress && q.Get("address") == "":
		return nil, badRequest("Must specify a non-empty ?id or ?address")
	}
	_, err := server.RaftRemovePeer.Call(r.Context(), h.servers, &rpc.RemovePeerRequest{ID: q.Get("id"), Address: q.Get("address")})
	return nil, err
}

// autopilotServer is one server of operator/autopilot/health, as Consul's.
type autopilotServer struct {
	ID, Name, Address, SerfStatus, Version string
	Leader                                 bool
	LastContact                            string // a Go duration, "0s" on the leader
	LastTerm, LastIndex                    uint64
	Healthy, Voter                         bool
	StableSince                            time.Time
}

// operatorAutopilotHealth answers GET /v1/operator/autopilot/health: the
// leader's latest look at its servers (at most a second old), with 429
// when any is unhealthy, as Consul answers.
func (h *API) operatorAutopilotHealth(w http.ResponseWriter, r *http.Request) (any, error) {
	health, err := server.AutopilotHealth.Call(r.Context(), h.servers, &rpc.Empty{})
	if err != nil {
		return nil, err
	}
	out := struct {
		Healthy          bool
		FailureTolerance int
		Servers          []autopilotServer
	}{Healthy: health.Healthy, FailureTolerance: health.FailureTolerance, Servers: []autopilotServer{}}
	for _, s := range health.Servers {
		out.Servers = append(out.Servers, autopilotServer{ID: s.ID, Name: s.Name, Address: s.Address, SerfStatus: s.SerfStatus,
			Version: s.Version, Leader: s.Leader, LastContact: s.LastContact.String(), LastTerm: s.LastTerm, LastIndex: s.LastIndex,
			Healthy: s.Healthy, Voter: s.Voter, StableSince: s.StableSince})
	}
	if !health.Healthy {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
	}
	return out, nil
}

// operatorAutopilotGetConfiguration answers GET
// /v1/operator/autopilot/configuration (catalog.AutopilotConfig writes its
// durations as Consul does).
func (h *API) operatorAutopilotGetConfiguration(w http.ResponseWriter, r *http.Request) (any, error) {
	qo, err := parseQueryOptions(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	res, err := server.AutopilotGetConfiguration.Call(r.Context(), h.servers, &qo)
	if err != nil {
		return nil, err
	}
	setMeta(w, res.QueryMeta)
	return res.Config, nil
}

// operatorAutopilotSetConfiguration answers PUT
// /v1/operator/autopilot/configuration[?cas=index], as Consul's: the
// fields the body leaves out take Consul's defaults (not the stored
// values), durations are strings or nanoseconds, and the answer is true,
// or false when ?cas named an index other than the stored one (0: none is
// stored yet).
func (h *API) operatorAutopilotSetConfiguration(w http.ResponseWriter, r *http.Request) (any, error) {
	in := catalog.AutopilotConfig{CleanupDeadServers: true, LastContactThreshold: config.DefaultLastContactThreshold,
		MaxTrailingLogs: config.DefaultMaxTrailingLogs, ServerStabilizationTime: config.DefaultServerStabilizationTime}
	if err := decodeBody(r, w, &in); err != nil {
		return nil, err
	}
	dc, err := requestDC(r, h.cfg.Datacenter)
	if err != nil {
		return nil, err
	}
	in.CreateIndex, in.ModifyIndex = 0, 0 // the server's to set
	req := &catalog.AutopilotConfigRequest{Datacenter: dc, Config: in}
	if v, ok := r.URL.Query()["cas"]; ok {
		idx, err := strconv.ParseUint(v[0], 10, 64)
		if err != nil {
			return nil, badRequest("Error parsing cas value: %v", err)
		}
		req.CAS, req.Index = true, idx
	}
	return server.CASResult(server.AutopilotSetConfiguration.Call(r.Context(), h.servers, req))
}

// snapshotSave streams a snapshot of this server's state.
func (h *API) snapshotSave(w http.ResponseWriter, r *http.Request) (any, error) {
	if h.operator == nil {
		return nil, &httpError{http.StatusInternalServerError, "not a server"}
	}
	w.Header().Set("Content-Type", "application/x-gzip")
	cw := &countingWriter{w: w}
	if err := h.operator.SaveSnapshot(cw); err != nil {
		if cw.n == 0 {
			return nil, err
		}
		// Already streaming: the archive is cut short, which its
		// checksum catches on restore.
		h.logger.Error("snapshot save cut short", "error", err)
	}
	return nil, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (h *API) snapshotRestore(w http.ResponseWriter, r *http.Request) (any, error) {
	if h.operator == nil {
		return nil, &httpError{http.StatusInternalServerError, "not a server"}
	}
	err := h.operator.RestoreSnapshot(http.MaxBytesReader(w, r.Body, 4<<30))
	switch {
	case errors.Is(err, consensus.ErrBadSnapshot):
		return nil, badRequest("%v", err)
	case err != nil:
		return nil, err
	}
	return nil, nil
}
