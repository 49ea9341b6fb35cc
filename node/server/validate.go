package server

import (
	"fmt"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/checks"
	"github.com/meshd/meshd/node/config"
)

// ValidateRegister is the one check of a registration, whatever path it
// came by: HTTP on any agent, RPC from an agent, a forward from another
// server. The leader runs it before the registration enters the log (an
// agent's HTTP handler also runs it, to refuse a bad body at once): the
// catalog's own checks (RegisterRequest.Validate, which the
// FSM runs again), and those a registration must pass to enter the log
// that the FSM does not check, as entries written before them must still
// apply. Errors wrap catalog.ErrInvalid and name the field.
func ValidateRegister(req *catalog.RegisterRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if req.Address == "" && !req.SkipNodeUpdate {
		return fmt.Errorf("%w: Address: missing node address", catalog.ErrInvalid)
	}
	if s := req.Service; s != nil && (s.Weights.Passing < 0 || s.Weights.Warning < 0) {
		return fmt.Errorf("%w: Service.Weights: must not be negative", catalog.ErrInvalid)
	}
	for i, c := range req.Checks {
		if c == nil {
			continue
		}
		if err := validateServerCheck(fmt.Sprintf("Checks[%d]", i), &c.Definition); err != nil {
			return err
		}
	}
	return nil
}

// validateServerCheck checks a definition the servers will run (an HTTP,
// TCP or gRPC one) as an agent checks its own, so that a bad one is
// refused now rather than logged by a server later.
func validateServerCheck(field string, d *catalog.CheckDefinition) error {
	if d.HTTP == "" && d.TCP == "" && d.GRPC == "" {
		return nil
	}
	if d.Interval < config.MinCheckPeriod {
		return fmt.Errorf("%w: %s.Definition.Interval: must be at least %v for a check the servers run, got %v",
			catalog.ErrInvalid, field, config.MinCheckPeriod, d.Interval)
	}
	def := ExternalDefinition(field, d)
	if err := def.Validate(); err != nil {
		return fmt.Errorf("%w: %s.Definition.%v", catalog.ErrInvalid, field, err)
	}
	return nil
}

// ExternalDefinition is the check runner's definition of an external
// node's check d, under id: what a server runs.
func ExternalDefinition(id string, d *catalog.CheckDefinition) checks.Definition {
	return checks.Definition{
		ID: id, HTTP: d.HTTP, Method: d.Method, Header: d.Header, Body: d.Body,
		TLSSkipVerify: d.TLSSkipVerify, TCP: d.TCP, GRPC: d.GRPC,
		Interval: d.Interval, Timeout: d.Timeout,
	}
}
