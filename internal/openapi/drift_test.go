package openapi_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/logtail"
	"github.com/switchyard-dev/switchyard/internal/openapi"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// jsonFields lists the JSON names of t's fields, embedded structs
// flattened as encoding/json does.
func jsonFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			names = append(names, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// The platform's schemas are written by hand; this holds them to the Go
// types whose JSON they describe, so a field added there shows up here.
func TestPlatformSchemasFollowTheGoTypes(t *testing.T) {
	doc, err := openapi.Document(nil, openapi.Options{Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	specFields := slices.DeleteFunc(append(jsonFields(reflect.TypeFor[registry.Spec]()), "env_names"),
		func(s string) bool { return s == "env" })
	slices.Sort(specFields)
	for schema, want := range map[string][]string{
		"Invocation":   jsonFields(reflect.TypeFor[invocation.Record]()),
		"Problem":      jsonFields(reflect.TypeFor[gateway.Problem]()),
		"Error":        jsonFields(reflect.TypeFor[wire.Error]()),
		"FieldError":   jsonFields(reflect.TypeFor[wire.FieldError]()),
		"FunctionSpec": specFields,
		"OpsFunction":  jsonFields(reflect.TypeFor[gateway.OpsFunction]()),
		"OpsInstance":  jsonFields(reflect.TypeFor[gateway.OpsInstance]()),
		"OpsVersion":   jsonFields(reflect.TypeFor[gateway.OpsVersion]()),
		"LogLine":      jsonFields(reflect.TypeFor[logtail.Line]()),
		"DeadLetter":   jsonFields(reflect.TypeFor[invocation.DeadLetter]()),
	} {
		var got []string
		for p := range schemaOf(t, doc, schema)["properties"].(map[string]any) {
			got = append(got, p)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: properties %v, the Go type has %v", schema, got, want)
		}
	}

	var codes []string
	for _, c := range schemaOf(t, doc, "Code")["enum"].([]any) {
		codes = append(codes, c.(string))
	}
	for _, c := range wire.Codes() {
		if !slices.Contains(codes, string(c)) {
			t.Errorf("code %s is not in the Code schema", c)
		}
	}
	var st []string
	for _, s := range schemaOf(t, doc, "InvocationStatus")["enum"].([]any) {
		st = append(st, s.(string))
	}
	for _, s := range []invocation.Status{invocation.Queued, invocation.Running, invocation.Succeeded, invocation.Failed, invocation.Dead} {
		if !slices.Contains(st, string(s)) {
			t.Errorf("status %s is not in the InvocationStatus schema", s)
		}
	}
	if !strings.HasPrefix(gateway.ProblemTypePrefix, "urn:switchyard:error:") {
		t.Errorf("the gateway's problem types start with %q now", gateway.ProblemTypePrefix)
	}
}
