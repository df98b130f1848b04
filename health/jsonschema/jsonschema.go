// Package jsonschema validates JSON documents against the subset of JSON
// Schema (2020-12) that health/report.schema.json uses, for tests.
package jsonschema

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// known are the keywords Validate understands; a schema using another one
// is rejected rather than half checked.
var known = map[string]bool{
	"$schema": true, "$id": true, "$defs": true, "$ref": true, "title": true, "description": true,
	"type": true, "enum": true, "required": true, "properties": true, "additionalProperties": true,
	"items": true, "minimum": true, "maximum": true,
}

// Validate checks doc against schema and returns every violation found.
func Validate(schema, doc []byte) error {
	var s, d any
	if err := json.Unmarshal(schema, &s); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("document: %w", err)
	}
	v := &validator{root: s.(map[string]any)}
	v.check("$", s.(map[string]any), d)
	if len(v.errs) > 0 {
		return fmt.Errorf("%d violations:\n%s", len(v.errs), strings.Join(v.errs, "\n"))
	}
	return nil
}

type validator struct {
	root map[string]any
	errs []string
}

func (v *validator) fail(at, format string, args ...any) {
	v.errs = append(v.errs, at+": "+fmt.Sprintf(format, args...))
}

func (v *validator) check(at string, s map[string]any, d any) {
	for k := range s {
		if !known[k] {
			v.fail(at, "schema keyword %q is not supported by this validator", k)
		}
	}
	if ref, ok := s["$ref"].(string); ok {
		name, found := strings.CutPrefix(ref, "#/$defs/")
		def, _ := v.root["$defs"].(map[string]any)[name].(map[string]any)
		if !found || def == nil {
			v.fail(at, "unresolvable $ref %q", ref)
			return
		}
		v.check(at, def, d)
	}
	if t, ok := s["type"]; ok && !typeMatches(t, d) {
		v.fail(at, "type %s, want %v", typeOf(d), t)
		return
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return equal(e, d) }) {
		v.fail(at, "%v is not one of %v", d, enum)
	}
	if n, ok := d.(json.Number); ok {
		f, _ := n.Float64()
		if m, ok := s["minimum"].(float64); ok && f < m {
			v.fail(at, "%v below minimum %v", f, m)
		}
		if m, ok := s["maximum"].(float64); ok && f > m {
			v.fail(at, "%v above maximum %v", f, m)
		}
	}
	switch d := d.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asSlice(s["required"]) {
			if _, ok := d[r.(string)]; !ok {
				v.fail(at, "missing required %q", r)
			}
		}
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, ok := props[k].(map[string]any)
			switch {
			case ok:
				v.check(at+"."+k, ps, d[k])
			case s["additionalProperties"] == false:
				v.fail(at, "property %q is not in the schema", k)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range d {
				v.check(fmt.Sprintf("%s[%d]", at, i), items, e)
			}
		}
	}
}

func asSlice(x any) []any {
	s, _ := x.([]any)
	return s
}

func typeMatches(t, d any) bool {
	if ts, ok := t.([]any); ok {
		return slices.ContainsFunc(ts, func(t any) bool { return typeMatches(t, d) })
	}
	want := t.(string)
	got := typeOf(d)
	return got == want || want == "number" && got == "integer"
}

func typeOf(d any) string {
	switch d := d.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if strings.ContainsAny(d.String(), ".eE") {
			return "number"
		}
		return "integer"
	case []any:
		return "array"
	default:
		return "object"
	}
}

func equal(e, d any) bool {
	if n, ok := d.(json.Number); ok {
		f, _ := n.Float64()
		return e == f
	}
	return e == d
}
