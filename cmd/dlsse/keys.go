package main

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
)

// kind is what a configuration key holds, from its Config field's type.
type kind int

const (
	kindString kind = iota
	kindDuration
	kindInt
	kindFloat
	kindBool
	kindList
)

// name is how the help and error messages call a kind.
func (k kind) name() string {
	return [...]string{"string", "duration", "int", "number", "bool", "list"}[k]
}

// notA is the error for a value that is not of the kind; shown is the
// value as the source wrote it.
func (k kind) notA(shown string) error {
	want := [...]string{"text", "a duration (e.g. 15s)", "a whole number (e.g. 10)", "a number (e.g. 2.5)", "true or false", "a list"}[k]
	return fmt.Errorf("%s is not %s", shown, want)
}

// configKey is one key of Config: its name (the koanf tag, also the YAML
// key; DLSSE_<NAME> and -<name-with-dashes> derive from it), its kind and
// its Go type.
type configKey struct {
	name string
	kind kind
	typ  reflect.Type
}

func (k configKey) envName() string  { return "DLSSE_" + strings.ToUpper(k.name) }
func (k configKey) flagName() string { return strings.ReplaceAll(k.name, "_", "-") }

// configKeys are Config's keys in field order; keyByName indexes them.
var (
	configKeys = keysOf(reflect.TypeFor[Config]())
	keyByName  = func() map[string]configKey {
		m := make(map[string]configKey, len(configKeys))
		for _, k := range configKeys {
			m[k.name] = k
		}
		return m
	}()
)

// keysOf lists a configuration struct's koanf-tagged fields. A field of a
// type the loader cannot read is a programming error, caught by every test.
func keysOf(t reflect.Type) []configKey {
	var keys []configKey
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("koanf")
		if name == "" {
			continue
		}
		k := configKey{name: name, typ: f.Type}
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			k.kind = kindDuration
		case f.Type == reflect.TypeFor[[]string]():
			k.kind = kindList
		default:
			switch f.Type.Kind() {
			case reflect.String:
				k.kind = kindString
			case reflect.Int, reflect.Int64:
				k.kind = kindInt
			case reflect.Float64:
				k.kind = kindFloat
			case reflect.Bool:
				k.kind = kindBool
			default:
				panic(fmt.Sprintf("config key %s: the loader cannot read a %s", name, f.Type))
			}
		}
		keys = append(keys, k)
	}
	return keys
}

// decode turns a value from a source into the key's Go type. Environment
// variables and flags give strings; YAML gives strings, numbers, booleans
// and lists. The error says what is wrong with the value; the caller says
// where it came from.
func (k configKey) decode(v any) (any, error) {
	if s, ok := v.(string); ok {
		return k.decodeString(s)
	}
	notA := func() error { return k.kind.notA(fmt.Sprint(v)) }
	switch v := v.(type) {
	case nil:
		if k.kind == kindString || k.kind == kindList {
			return reflect.Zero(k.typ).Interface(), nil
		}
		return nil, k.kind.notA("an empty value")
	case map[string]any:
		return nil, k.kind.notA("a mapping")
	case []any:
		if k.kind != kindList {
			return nil, k.kind.notA("a list")
		}
		out := make([]string, 0, len(v))
		for _, item := range v {
			switch item.(type) {
			case map[string]any, []any, nil:
				return nil, fmt.Errorf("list items must be plain values, not %v", item)
			}
			out = append(out, fmt.Sprint(item))
		}
		return out, nil
	case bool:
		if k.kind == kindBool {
			return v, nil
		}
		if k.kind == kindString {
			return strconv.FormatBool(v), nil
		}
		return nil, notA()
	}
	// A YAML number.
	f, isNumber := toFloat(v)
	if !isNumber {
		return nil, notA()
	}
	switch k.kind {
	case kindString:
		return fmt.Sprint(v), nil
	case kindFloat:
		return f, nil
	case kindInt:
		text := fmt.Sprint(v)
		if fv, isFloat := v.(float64); isFloat && fv == math.Trunc(fv) && !math.IsInf(fv, 0) {
			text = strconv.FormatFloat(f, 'f', -1, 64) // 1e+06 is 1000000
		}
		if n, err := strconv.ParseInt(text, 10, k.typ.Bits()); err == nil {
			return reflect.ValueOf(n).Convert(k.typ).Interface(), nil
		}
	case kindDuration:
		if f == 0 { // "0" needs no unit
			return time.Duration(0), nil
		}
	}
	return nil, notA()
}

// decodeString parses a string value: an environment variable, a flag, or
// a quoted YAML value.
func (k configKey) decodeString(s string) (any, error) {
	switch k.kind {
	case kindString:
		return s, nil
	case kindDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, k.kind.notA(strconv.Quote(s))
		}
		return d, nil
	case kindInt:
		n, err := strconv.ParseInt(s, 10, k.typ.Bits())
		if err != nil {
			return nil, k.kind.notA(strconv.Quote(s))
		}
		return reflect.ValueOf(n).Convert(k.typ).Interface(), nil
	case kindFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, k.kind.notA(strconv.Quote(s))
		}
		return f, nil
	case kindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, k.kind.notA(strconv.Quote(s))
		}
		return b, nil
	default: // kindList: comma-separated
		out := []string{}
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return out, nil
	}
}

// toFloat reports a YAML number's value.
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// format writes a value of the key the way a user would type it: the
// help's defaults.
func (k configKey) format(v any) string {
	switch v := v.(type) {
	case time.Duration:
		return formatDuration(v)
	case []string:
		return strings.Join(v, ",")
	}
	return fmt.Sprint(v)
}

// formatDuration is time.Duration's String without the zero tails: 10m,
// not 10m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a likely typo.
func closest(s string, candidates []string) (string, bool) {
	best, bestDist := "", math.MaxInt
	for _, c := range candidates {
		if d := levenshtein.ComputeDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, bestDist <= max(2, len(s)/3)
}
