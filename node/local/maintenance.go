package local

import (
	"fmt"
	"path/filepath"

	"github.com/meshd/meshd/catalog"
)

// Maintenance mode is a critical check, as in Consul: it takes a service
// instance (or, for the node, every instance on it) out of healthy answers
// while leaving it registered.
const (
	maintenanceDir         = "maintenance"
	maintenanceCheckType   = "maintenance"
	serviceMaintenanceName = "Service Maintenance Mode"
	nodeMaintenanceName    = "Node Maintenance Mode"
	defaultServiceReason   = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
	defaultNodeReason      = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
)

// maintenance is a maintenance check as saved in the data dir.
type maintenance struct {
	CheckID   string
	ServiceID string
	Reason    string
}

// setMaintenanceLocked enables or disables a maintenance check; the
// caller holds r.mu. changed is false when there was nothing to do.
func (r *Registry) setMaintenanceLocked(checkID, serviceID string, enable bool, reason string) (uint64, bool, error) {
	if serviceID != "" && r.state.Service(serviceID) == nil {
		return 0, false, fmt.Errorf("%w: unknown service ID %q", catalog.ErrNotFound, serviceID)
	}
	if !enable {
		return r.removeCheck(checkID)
	}
	m := &maintenance{CheckID: checkID, ServiceID: serviceID, Reason: reason}
	if err := r.persist.saveMaintenance(m); err != nil {
		return 0, false, err
	}
	return r.state.AddCheck(maintenanceCheck(m)), true, nil
}

func maintenanceCheck(m *maintenance) *Check {
	name, notes := nodeMaintenanceName, m.Reason
	if m.ServiceID != "" {
		name = serviceMaintenanceName
	}
	if notes == "" {
		notes = defaultNodeReason
		if m.ServiceID != "" {
			notes = defaultServiceReason
		}
	}
	return &Check{Check: &catalog.Check{
		CheckID: m.CheckID, Name: name, Notes: notes, ServiceID: m.ServiceID,
		Status: catalog.HealthCritical, Type: maintenanceCheckType,
	}}
}

func (p *persister) saveMaintenance(m *maintenance) error {
	if p == nil {
		return nil
	}
	return writeJSONAtomic(filepath.Join(p.dir, maintenanceDir, fileName(m.CheckID)), m)
}

func (p *persister) removeMaintenance(id string) error {
	if p == nil {
		return nil
	}
	return removeIfExists(filepath.Join(p.dir, maintenanceDir, fileName(id)))
}

// loadMaintenance reads the saved maintenance checks.
func (p *persister) loadMaintenance() ([]*maintenance, error) {
	var out []*maintenance
	err := p.load(maintenanceDir, func(path string, b []byte) error {
		m := &maintenance{}
		if err := decodeStrictJSON(b, m); err != nil || m.CheckID == "" {
			return fmt.Errorf("%s: not a maintenance record", path)
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// restoreMaintenance puts saved maintenance checks back, dropping those
// whose service is gone.
func (r *Registry) restoreMaintenance() error {
	ms, err := r.persist.loadMaintenance()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.ServiceID != "" && r.state.Service(m.ServiceID) == nil {
			if err := r.persist.removeMaintenance(m.CheckID); err != nil {
				return err
			}
			continue
		}
		r.state.AddCheck(maintenanceCheck(m))
	}
	return nil
}
