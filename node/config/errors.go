package config

import "errors"

// Sentinel errors. Every error this package returns for bad input (from
// Decode, DecodeJSON, Validate, ParseFile and Load) matches ErrInvalid with
// errors.Is, so the HTTP API can answer 400 without inspecting messages.
var (
	// ErrInvalid is matched by every error about bad input.
	ErrInvalid = errors.New("invalid input")

	// ErrUnknownField is the cause of a FieldError about a key that matches no
	// field; only returned when DecodeOptions.ErrorUnused is set.
	ErrUnknownField = errors.New("unknown field")

	// ErrSyntax is the cause of an error about input that is not well-formed
	// HCL or JSON.
	ErrSyntax = errors.New("syntax error")
)

// FieldError reports a problem with one field of the input. Path names the
// field in the input's own terms: the keys as the request or the file spelled
// them ("Check.Interval", "services[1].checks[0].ttl"), slice indexes in
// brackets, map keys after a dot. Path is empty for a problem with the input
// as a whole.
//
// A FieldError matches ErrInvalid and, through Unwrap, its cause.
type FieldError struct {
	Path string
	Err  error
}

// Error returns "Path: cause", or just the cause when Path is empty.
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalid: every FieldError is bad input.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// fieldErr builds a FieldError with a plain message as its cause.
func fieldErr(path, msg string) *FieldError {
	return &FieldError{Path: path, Err: errors.New(msg)}
}

// joinPath appends a struct field or map key to a path.
func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}
