package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// DecodeOptions controls Decode and DecodeJSON.
type DecodeOptions struct {
	// ErrorUnused makes two things errors: a key that matches no field
	// (ErrUnknownField), and a second spelling of a field already given
	// ("id" next to "check_id"). Config files set it: Consul rejects unknown
	// keys in files. HTTP bodies leave it false: unknown fields are ignored,
	// since clients send fields meshd does not implement, and of two
	// spellings the more canonical wins (the exact name, then any other
	// spelling of it, then an alias; on a tie, the lexically first key).
	ErrorUnused bool
}

// DecodeJSON decodes a JSON document into out (a non-nil pointer, usually to
// a ServiceDefinition or CheckDefinition) with the rules of Decode. Numbers
// keep their precision (no float64 detour), so a nanosecond duration or a
// large integer decodes exactly. The body must hold exactly one JSON value.
//
// Errors are *FieldError values naming the field as the body spelled it; a
// malformed body gives one that wraps ErrSyntax. DecodeJSON does not call
// Validate.
func DecodeJSON(body []byte, out any, opts DecodeOptions) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return &FieldError{Err: fmt.Errorf("%w: empty body", ErrSyntax)}
		}
		return &FieldError{Err: fmt.Errorf("%w: %s", ErrSyntax, jsonErrText(err))}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &FieldError{Err: fmt.Errorf("%w: data after the JSON value", ErrSyntax)}
	}
	_, err := decodeTracked(v, out, opts, false)
	return err
}

// jsonErrText makes encoding/json's messages a little shorter.
func jsonErrText(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

// Decode decodes a generic tree (maps with string keys, lists, strings,
// numbers, booleans, as produced by encoding/json or an HCL parser) into out,
// which must be a non-nil pointer. Fields absent from the input keep their
// value in out.
//
// Keys match field names ignoring case, underscores and dashes, so
// "deregister_critical_service_after", "DeregisterCriticalServiceAfter" and
// "deregistercriticalserviceafter" all set DeregisterCriticalServiceAfter. A
// struct tag `mapstructure:"name"` renames a field; a tag `alias:"A,B"` adds
// other accepted names (CheckID for ID, ScriptArgs for Args).
//
// Values are checked strictly: a string is never taken for a number or a bool.
// Durations accept a Go duration string ("10s", "1m30s"; "" is zero) or a
// number of nanoseconds. Integers accept integral numbers only. HCL's habit of
// wrapping a block in a list is undone: a list of one object fills a struct, a
// list of objects fills a map (merged in order), and a lone object fills a
// list as its only element.
//
// Errors are *FieldError values whose Path uses the input's own keys
// ("Check.Interval: invalid duration \"abc\"", "Port: expected a number, got
// string"). Decode does not call Validate.
func Decode(in map[string]any, out any, opts DecodeOptions) error {
	_, err := decodeTracked(in, out, opts, false)
	return err
}

// decoder carries one decode: the options and, for error messages, the
// input-terms path of every canonical path it saw.
type decoder struct {
	opts DecodeOptions
	// trans maps a canonical path (field names as mapstructure names them:
	// "services[1].Checks[0].Interval") to the path as the input spelled it
	// ("services[1].checks[0].interval").
	trans map[string]string
	// snake renders canonical remainders not found in trans in snake_case, as
	// config files spell them.
	snake bool
}

// decodeTracked decodes in into out and returns the decoder so that callers
// (the file parser) can translate later validation paths too.
//
// The work is done in two steps: normalize walks the input alongside out's
// type, matches keys to fields, undoes HCL's list wrapping and rewrites every
// key to the field's canonical name, recording how each path was spelled; then
// mapstructure assigns the values with exact names and a hook that converts
// and checks scalars. mapstructure's errors name canonical paths; trans turns
// them back into the input's terms.
func decodeTracked(in, out any, opts DecodeOptions, snake bool) (*decoder, error) {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("config: decode into %T: need a non-nil pointer", out)
	}
	d := &decoder{opts: opts, trans: make(map[string]string), snake: snake}
	norm, err := d.normalize(in, rv.Type().Elem(), "", "")
	if err != nil {
		return d, err
	}
	md, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:     out,
		DecodeHook: mapstructure.DecodeHookFuncValue(scalarHook),
		MatchName:  func(key, field string) bool { return key == field },
	})
	if err != nil {
		return d, fmt.Errorf("config: %w", err)
	}
	if err := md.Decode(norm); err != nil {
		return d, d.translateErr(err)
	}
	return d, nil
}

// field describes one settable struct field for key matching.
type field struct {
	name    string // canonical: the mapstructure tag or the Go name
	norm    string // normKey(name)
	aliases []string
	typ     reflect.Type
}

// structFields lists t's settable fields in declaration order.
func structFields(t reflect.Type) []field {
	fields := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name := sf.Name
		if tag, _, _ := strings.Cut(sf.Tag.Get("mapstructure"), ","); tag == "-" {
			continue
		} else if tag != "" {
			name = tag
		}
		f := field{name: name, norm: normKey(name), typ: sf.Type}
		if a := sf.Tag.Get("alias"); a != "" {
			for _, alias := range strings.Split(a, ",") {
				f.aliases = append(f.aliases, normKey(alias))
			}
		}
		fields = append(fields, f)
	}
	return fields
}

// normKey folds a key for matching: lower case, no underscores or dashes.
func normKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range strings.ToLower(k) {
		if r != '_' && r != '-' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Match ranks: a lower rank is a more canonical spelling and wins.
const (
	rankExact = iota
	rankFolded
	rankAlias
)

// matchField finds the field a key names and how canonically it names it.
func matchField(fields []field, key string) (int, int) {
	nk := normKey(key)
	for i, f := range fields {
		if key == f.name {
			return i, rankExact
		}
	}
	for i, f := range fields {
		if nk == f.norm {
			return i, rankFolded
		}
	}
	for i, f := range fields {
		for _, a := range f.aliases {
			if nk == a {
				return i, rankAlias
			}
		}
	}
	return -1, 0
}

// normalize returns in rewritten for type t: struct keys renamed to canonical
// field names, objects and lists reshaped as t needs. canon and input are the
// value's path in canonical and in input terms.
func (d *decoder) normalize(in any, t reflect.Type, canon, input string) (any, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	d.trans[canon] = input
	if in == nil || t == reflect.TypeFor[time.Duration]() {
		return in, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, objPath, err := oneObject(in, input)
		if err != nil || obj == nil {
			return nil, err
		}
		d.trans[canon] = objPath
		return d.normalizeStruct(obj, t, canon, objPath)
	case reflect.Map:
		return d.normalizeMap(in, t, canon, input)
	case reflect.Slice:
		if _, ok := asObject(in); ok {
			// A lone object (an HCL block, or JSON where a list was due)
			// is a list of one. Its input path stays the list's own.
			v, err := d.normalize(in, t.Elem(), canon+"[0]", input)
			if err != nil {
				return nil, err
			}
			return []any{v}, nil
		}
		list, ok := asList(in)
		if !ok {
			return nil, fieldErr(input, "expected a list, got "+kindName(in))
		}
		out := make([]any, len(list))
		for i, v := range list {
			idx := "[" + strconv.Itoa(i) + "]"
			nv, err := d.normalize(v, t.Elem(), canon+idx, input+idx)
			if err != nil {
				return nil, err
			}
			out[i] = nv
		}
		return out, nil
	}
	// Scalars (and interface{} targets) go through as they are; scalarHook
	// checks and converts them.
	return in, nil
}

// oneObject returns the object that fills a struct: in itself, or the only
// element of a list (HCL wraps every block in one). An empty list is unset.
func oneObject(in any, input string) (map[string]any, string, error) {
	if obj, ok := asObject(in); ok {
		return obj, input, nil
	}
	list, ok := asList(in)
	if !ok {
		return nil, "", fieldErr(input, "expected an object, got "+kindName(in))
	}
	switch len(list) {
	case 0:
		return nil, input, nil
	case 1:
		path := input + "[0]"
		obj, ok := asObject(list[0])
		if !ok {
			return nil, "", fieldErr(path, "expected an object, got "+kindName(list[0]))
		}
		return obj, path, nil
	default:
		return nil, "", fieldErr(input, fmt.Sprintf("expected one block, got %d", len(list)))
	}
}

func (d *decoder) normalizeStruct(obj map[string]any, t reflect.Type, canon, input string) (any, error) {
	fields := structFields(t)
	type pick struct {
		key  string
		rank int
	}
	chosen := make(map[int]pick, len(obj))
	for _, k := range sortedMapKeys(obj) {
		i, rank := matchField(fields, k)
		if i < 0 {
			if d.opts.ErrorUnused {
				return nil, &FieldError{Path: joinPath(input, k), Err: ErrUnknownField}
			}
			continue
		}
		prev, dup := chosen[i]
		switch {
		case !dup:
			chosen[i] = pick{k, rank}
		case d.opts.ErrorUnused:
			return nil, fieldErr(joinPath(input, k), fmt.Sprintf("same field as %q", prev.key))
		case rank < prev.rank:
			chosen[i] = pick{k, rank}
		}
	}
	out := make(map[string]any, len(chosen))
	for i, f := range fields {
		p, ok := chosen[i]
		if !ok {
			continue
		}
		v, err := d.normalize(obj[p.key], f.typ, joinPath(canon, f.name), joinPath(input, p.key))
		if err != nil {
			return nil, err
		}
		out[f.name] = v
	}
	return out, nil
}

// normalizeMap fills a map from an object or, as HCL gives repeated blocks,
// from a list of objects merged in order (later keys win).
func (d *decoder) normalizeMap(in any, t reflect.Type, canon, input string) (any, error) {
	var objs []map[string]any
	var paths []string
	if obj, ok := asObject(in); ok {
		objs, paths = append(objs, obj), append(paths, input)
	} else if list, ok := asList(in); ok {
		for i, el := range list {
			path := input + "[" + strconv.Itoa(i) + "]"
			obj, ok := asObject(el)
			if !ok {
				return nil, fieldErr(path, "expected an object, got "+kindName(el))
			}
			objs, paths = append(objs, obj), append(paths, path)
		}
	} else {
		return nil, fieldErr(input, "expected an object, got "+kindName(in))
	}
	out := make(map[string]any)
	for i, obj := range objs {
		for _, k := range sortedMapKeys(obj) {
			v, err := d.normalize(obj[k], t.Elem(), canon+"["+k+"]", joinPath(paths[i], k))
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
	}
	return out, nil
}

// asObject returns in as a map[string]any if it is a map with string keys.
func asObject(in any) (map[string]any, bool) {
	if m, ok := in.(map[string]any); ok {
		return m, true
	}
	rv := reflect.ValueOf(in)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	m := make(map[string]any, rv.Len())
	iter := rv.MapRange()
	for iter.Next() {
		m[iter.Key().String()] = iter.Value().Interface()
	}
	return m, true
}

// asList returns in as a []any if it is a slice or array.
func asList(in any) ([]any, bool) {
	if l, ok := in.([]any); ok {
		return l, true
	}
	rv := reflect.ValueOf(in)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	l := make([]any, rv.Len())
	for i := range l {
		l[i] = rv.Index(i).Interface()
	}
	return l, true
}

// kindName names a decoded value's kind the way a JSON or HCL author thinks
// of it.
func kindName(in any) string {
	switch in.(type) {
	case nil:
		return "null"
	case json.Number:
		return "number"
	}
	switch reflect.ValueOf(in).Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return fmt.Sprintf("%T", in)
}

// describeType names what a target type expects.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// translateErr turns mapstructure's first error into a FieldError in the
// input's terms.
func (d *decoder) translateErr(err error) error {
	de := firstDecodeError(err)
	if de == nil {
		return &FieldError{Err: err}
	}
	cause := de.Unwrap()
	var ute *mapstructure.UnconvertibleTypeError
	if errors.As(cause, &ute) {
		cause = errors.New("expected " + describeType(ute.Expected.Type()) + ", got " + kindName(ute.Value))
	}
	return &FieldError{Path: d.inputPath(de.Name()), Err: cause}
}

// firstDecodeError finds the first leaf error mapstructure reported, in field
// order, so messages are stable from run to run.
func firstDecodeError(err error) *mapstructure.DecodeError {
	switch e := err.(type) {
	case *mapstructure.DecodeError:
		return e
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if de := firstDecodeError(inner); de != nil {
				return de
			}
		}
		return nil
	}
	if inner := errors.Unwrap(err); inner != nil {
		return firstDecodeError(inner)
	}
	return nil
}

// inputPath translates a canonical path into the input's terms. A path the
// decode never saw (a field that was absent, named by Validate) is translated
// up to its longest known prefix; the rest keeps its canonical spelling, in
// snake_case for config files.
func (d *decoder) inputPath(canon string) string {
	if p, ok := d.trans[canon]; ok {
		return p
	}
	rest := ""
	for c := canon; c != ""; {
		parent, last := splitLastComponent(c)
		if d.snake && strings.HasPrefix(last, ".") {
			last = "." + snakeCase(last[1:])
		} else if d.snake && parent == "" && !strings.HasPrefix(last, "[") {
			last = snakeCase(last)
		}
		rest = last + rest
		if p, ok := d.trans[parent]; ok {
			if p == "" {
				return strings.TrimPrefix(rest, ".")
			}
			return p + rest
		}
		c = parent
	}
	return strings.TrimPrefix(rest, ".")
}

// splitLastComponent splits "a.b[1].c" into "a.b[1]" and ".c", and "a[1]"
// into "a" and "[1]".
func splitLastComponent(p string) (string, string) {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i], p[i:]
		}
	}
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i], p[i:]
	}
	return "", p
}

// snakeCase spells a Go field name as Consul's files do:
// "DeregisterCriticalServiceAfter" → "deregister_critical_service_after",
// "GRPCUseTLS" → "grpc_use_tls", "TTL" → "ttl".
func snakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		upper := c >= 'A' && c <= 'Z'
		if upper && i > 0 {
			prevLower := r[i-1] >= 'a' && r[i-1] <= 'z' || r[i-1] >= '0' && r[i-1] <= '9'
			nextLower := i+1 < len(r) && r[i+1] >= 'a' && r[i+1] <= 'z'
			prevUpper := r[i-1] >= 'A' && r[i-1] <= 'Z'
			if prevLower || (prevUpper && nextLower) {
				b.WriteByte('_')
			}
		}
		if upper {
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}
