// Package config is the agent's configuration: Consul-dialect config files
// (HCL v1 and JSON), command-line flags, defaults, the -dev preset,
// validation, and the decoder for service and check definitions that the
// HTTP API shares for request bodies.
//
// # Two layers
//
// A File is what one source says: a config file, the -dev preset or the
// flags. Its settings are pointers, slices and maps, so that "unset" differs
// from "zero". Load merges the sources in order (defaults, -dev, each file,
// flags) and builds a Runtime: plain values, defaults applied, everything
// checked, derived values filled in. Scalars from later sources win; lists
// append; maps merge by key. Errors name where the value came from: the file
// and line and the key as the file spells it ("a.hcl:12: ports.http: expected
// a number, got string"), or the flag ("-http-port: ...").
//
// # One decoder
//
// Decode and DecodeJSON fill any struct from a generic tree or a JSON body.
// Keys match field names ignoring case, '_' and '-', plus aliases (CheckID,
// ScriptArgs), so Consul's CamelCase HTTP bodies and its snake_case files
// both decode into ServiceDefinition and CheckDefinition. Durations take
// "10s" or nanoseconds. Config files reject unknown keys
// (DecodeOptions.ErrorUnused); HTTP bodies ignore them. Errors are
// *FieldError values naming the field as the input spelled it.
//
// The decoder runs in two steps: a walk of the input alongside the target
// type that matches keys, undoes HCL's wrapping of blocks in lists and records
// each path's spelling; then go-viper/mapstructure with exact names and a hook
// for scalars. mapstructure's error paths are then translated back into the
// input's terms.
//
// # Syntax
//
// HCL files are parsed with hashicorp/hcl v1's parser and the AST is
// converted here, keeping each key's line. JSON files are read with
// encoding/json's tokenizer (as Consul reads them with encoding/json), not
// with hcl's JSON parser, which flattens nested objects in a way that cannot
// be undone reliably. hcl v1 can panic on malformed input; the parser recovers
// and reports a syntax error. Parsing has no side effects.
//
// Nothing here holds state between calls; every function is safe for
// concurrent use.
package config
