package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Scalars as Decode takes them: strictly typed, numbers without loss,
// durations as Go duration strings or whole nanoseconds.

// scalarHook converts and checks scalars as mapstructure assigns them;
// containers were already shaped by normalize and pass through.
func scalarHook(from, to reflect.Value) (any, error) {
	in := from.Interface()
	if to.Type() == reflect.TypeFor[time.Duration]() {
		return toDuration(in)
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := toInt(in)
		if err != nil {
			return nil, err
		}
		if to.OverflowInt(n) {
			return nil, fmt.Errorf("number %d out of range", n)
		}
		return n, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := toInt(in)
		if err != nil {
			return nil, err
		}
		if n < 0 || to.OverflowUint(uint64(n)) {
			return nil, fmt.Errorf("number %d out of range", n)
		}
		return uint64(n), nil
	case reflect.Float32, reflect.Float64:
		return toFloat(in)
	case reflect.String:
		if s, ok := in.(string); ok {
			return s, nil
		}
		return nil, errors.New("expected a string, got " + kindName(in))
	case reflect.Bool:
		if b, ok := in.(bool); ok {
			return b, nil
		}
		return nil, errors.New("expected a bool, got " + kindName(in))
	}
	return in, nil
}

// toInt accepts integral numbers of any representation.
func toInt(in any) (int64, error) {
	switch v := in.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return 0, fmt.Errorf("number %s out of range", v)
		}
		return floatToInt(f)
	case float64:
		return floatToInt(v)
	case float32:
		return floatToInt(float64(v))
	}
	rv := reflect.ValueOf(in)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if rv.Uint() > math.MaxInt64 {
			return 0, fmt.Errorf("number %d out of range", rv.Uint())
		}
		return int64(rv.Uint()), nil
	}
	return 0, errors.New("expected a number, got " + kindName(in))
}

func floatToInt(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, fmt.Errorf("expected a whole number, got %v", f)
	}
	// 2^63 is exactly representable; anything at or beyond it overflows.
	if f >= math.MaxInt64 || f < math.MinInt64 {
		return 0, fmt.Errorf("number %v out of range", f)
	}
	return int64(f), nil
}

func toFloat(in any) (float64, error) {
	switch v := in.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return 0, fmt.Errorf("number %s out of range", v)
		}
		return f, nil
	case float64:
		return v, nil
	case float32:
		return float64(v), nil
	}
	n, err := toInt(in)
	return float64(n), err
}

// toDuration accepts a duration string or a number of nanoseconds.
func toDuration(in any) (time.Duration, error) {
	if s, ok := in.(string); ok {
		if strings.TrimSpace(s) == "" {
			return 0, nil
		}
		dur, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return dur, nil
	}
	if kindName(in) != "number" {
		return 0, errors.New("expected a duration, got " + kindName(in))
	}
	n, err := toInt(in)
	if err != nil {
		return 0, err
	}
	return time.Duration(n), nil
}
