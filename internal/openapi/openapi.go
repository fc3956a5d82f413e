// Package openapi describes the gateway's HTTP API for a set of functions
// as an OpenAPI 3.1 document: each function's sync and async invocation and
// description, with its own input and output schemas, beside the routes
// every gateway serves, their problem+json errors and security schemes.
//
// The document is built from registry specs alone, so it can be rebuilt
// whenever the registry changes. Deciding which functions a caller may
// see is the caller's job: Document describes exactly the specs it gets.
package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
	"github.com/switchyard-dev/switchyard/schemas"
)

// Version is the OpenAPI version of the documents.
const Version = "3.1.0"

// Options say what the document says of itself.
type Options struct {
	// Title and Version fill info; empty, they are "Switchyard" and "0".
	Title, Version string
	// ServerURL, when set, is the document's one server (absolute, or
	// relative to where the document is served).
	ServerURL string
	// OIDC adds the oidc security scheme: set it when the gateway checks
	// OIDC tokens (one without a verifier refuses them).
	OIDC bool
	// Operator adds the /ops routes, for the document of an operator key.
	Operator bool
}

// SpecError is why one function cannot be described.
type SpecError struct {
	Name string
	Err  error
}

func (e *SpecError) Error() string { return fmt.Sprintf("openapi: function %q: %v", e.Name, e.Err) }
func (e *SpecError) Unwrap() error { return e.Err }

// Check reports whether Document can describe spec, as a *SpecError when
// it cannot: its name is invalid, or a schema does not compile as the
// gateway compiles it. A caller that would rather leave such a function
// out than serve no document filters with Check.
func Check(spec registry.Spec) error {
	_, err := describe(spec)
	return err
}

// Document returns the OpenAPI 3.1 document, as indented JSON, for specs,
// which must have distinct names. Functions appear sorted by name, and
// the same specs and options always give the same bytes. Of each spec it
// reads Name, Description, Version, InputSchema, OutputSchema, Access and
// Timeout. A spec that cannot be described fails the whole document; the
// error joins a *SpecError for each.
func Document(specs []registry.Spec, opts Options) ([]byte, error) {
	if opts.Title == "" {
		opts.Title = "Switchyard"
	}
	if opts.Version == "" {
		opts.Version = "0"
	}
	sorted := slices.Clone(specs)
	slices.SortFunc(sorted, func(a, b registry.Spec) int { return strings.Compare(a.Name, b.Name) })

	paths := platformPaths(opts)
	comps := components(opts)
	compSchemas := comps["schemas"].(obj)
	if opts.Operator {
		maps.Copy(paths, opsPaths())
		maps.Copy(compSchemas, opsSchemas())
	}
	var tags []any
	var errs []error
	for i, s := range sorted {
		if i > 0 && sorted[i-1].Name == s.Name {
			errs = append(errs, &SpecError{Name: s.Name, Err: errors.New("more than one spec has this name")})
			continue
		}
		f, err := describe(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		compSchemas[inputKey(s.Name)] = f.input
		compSchemas[outputKey(s.Name)] = f.output
		paths["/fn/"+s.Name] = functionPath(s, opts)
		tag := obj{"name": s.Name}
		if s.Description != "" {
			tag["description"] = s.Description
		}
		tags = append(tags, tag)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	doc := document{
		OpenAPI:           Version,
		Info:              info(opts),
		JSONSchemaDialect: schemas.Draft202012,
		Paths:             paths,
		Components:        comps,
		Tags:              append(platformTags(opts), tags...),
	}
	if opts.ServerURL != "" {
		if _, err := url.Parse(opts.ServerURL); err != nil {
			return nil, fmt.Errorf("openapi: server URL: %w", err)
		}
		doc.Servers = []any{obj{"url": opts.ServerURL}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return buf.Bytes(), nil
}

// document is the top level, a struct so that its fields keep the order
// readers expect; below it maps are written with sorted keys.
func platformTags(opts Options) []any {
	tags := []any{obj{"name": tagPlatform, "description": "Routes every gateway serves, whatever is deployed."}}
	if opts.Operator {
		tags = append(tags, obj{"name": tagOps, "description": "How the platform runs: for operator API keys only."})
	}
	return tags
}

type document struct {
	OpenAPI           string `json:"openapi"`
	Info              obj    `json:"info"`
	JSONSchemaDialect string `json:"jsonSchemaDialect"`
	Servers           []any  `json:"servers,omitempty"`
	Tags              []any  `json:"tags"`
	Paths             obj    `json:"paths"`
	Components        obj    `json:"components"`
}

type obj = map[string]any

// described is one function's schemas, ready to embed.
type described struct {
	input, output any
}

func describe(s registry.Spec) (described, error) {
	if err := wire.ValidateName(s.Name); err != nil {
		return described{}, &SpecError{Name: s.Name, Err: err}
	}
	in, err := embed(s.InputSchema, inputKey(s.Name))
	if err != nil {
		return described{}, &SpecError{Name: s.Name, Err: fmt.Errorf("input schema: %w", err)}
	}
	out, err := embed(s.OutputSchema, outputKey(s.Name))
	if err != nil {
		return described{}, &SpecError{Name: s.Name, Err: fmt.Errorf("output schema: %w", err)}
	}
	return described{input: in, output: out}, nil
}

func inputKey(name string) string  { return name + ".input" }
func outputKey(name string) string { return name + ".output" }

func schemaRef(key string) obj { return obj{"$ref": "#/components/schemas/" + key} }

func info(opts Options) obj {
	return obj{
		"title":   opts.Title,
		"version": opts.Version,
		"description": "The functions deployed on this Switchyard platform, as its HTTP gateway serves them.\n\n" +
			"POST /fn/{name} invokes a function with its input as the JSON body and answers its output; " +
			"with ?async=1 (or Prefer: respond-async) it queues the invocation and answers 202 with a record " +
			"to poll at /invocations/{id}.\n\n" +
			"Errors are RFC 9457 application/problem+json documents whose `code` is stable and whose `errors` " +
			"name each offending field by JSON pointer.\n\n" +
			"Credentials go in `Authorization: Bearer`: an API key (yk_…) or, where the gateway checks them, " +
			"an OIDC token. A function's access policy says whether it needs one.",
	}
}
