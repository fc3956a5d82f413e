package openapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Tags start with a capital, which no function name (and so no
// function's tag) does.
const tagPlatform = "Platform"

// The security schemes, by their names under components.
const (
	schemeAPIKey = "apiKey"
	schemeOIDC   = "oidc"
)

// security is the requirement of an operation: one of the schemes, or
// none at all when anonymous callers are served too.
func security(opts Options, optional bool) []any {
	var req []any
	if optional {
		req = append(req, obj{})
	}
	req = append(req, obj{schemeAPIKey: []any{}})
	if opts.OIDC {
		req = append(req, obj{schemeOIDC: []any{}})
	}
	return req
}

// Errors that any route behind authentication may answer: a bad
// Yard-Request-Id, a credential that does not check out, a rate limit.
var guarded = []wire.Code{wire.CodeInvalidArgument, wire.CodeUnauthenticated, wire.CodeResourceExhausted}

// invokeErrors are those of POST /fn/{name}: the gateway's own checks, and
// whatever code the function's handler answers with.
var invokeErrors = []wire.Code{
	wire.CodeInvalidArgument, wire.CodeUnauthenticated, wire.CodePermissionDenied, wire.CodeNotFound,
	wire.CodeConflict, wire.CodePayloadTooLarge, wire.CodeUnsupportedMediaType, wire.CodeResourceExhausted,
	wire.CodeInternal, wire.CodeUnavailable, wire.CodeDeadlineExceeded,
}

// responses maps each status to its response: ok first, then the problem
// response of each code.
func responses(ok obj, codes ...wire.Code) obj {
	r := obj{}
	for status, resp := range ok {
		r[status] = resp
	}
	for _, c := range codes {
		r[fmt.Sprint(c.HTTPStatus())] = obj{"$ref": "#/components/responses/" + string(c)}
	}
	return r
}

func param(name string) obj { return obj{"$ref": "#/components/parameters/" + name} }

// jsonOK is a 200 answering application/json with schema.
func jsonOK(description string, schema obj) obj {
	return obj{"200": obj{
		"description": description,
		"headers":     obj{wire.HeaderRequestID: obj{"$ref": "#/components/headers/" + wire.HeaderRequestID}},
		"content":     obj{"application/json": obj{"schema": schema}},
	}}
}

// platformPaths are the routes that do not depend on what is deployed.
func platformPaths(opts Options) obj {
	return obj{
		"/fn": obj{"get": obj{
			"operationId": "listFunctions",
			"tags":        []any{tagPlatform},
			"summary":     "List the functions the caller may call",
			"description": "Public functions, and those the caller's API key or token is granted, with their schemas. " +
				"A spec's env is never served: env_names lists the names of its variables.",
			"parameters": []any{param(wire.HeaderRequestID)},
			"security":   security(opts, true),
			"responses":  responses(jsonOK("The functions, sorted by name.", schemaRef("FunctionList")), guarded...),
		}},
		"/invocations/{id}": obj{
			"parameters": []any{param("InvocationId")},
			"get": obj{
				"operationId": "getInvocation",
				"tags":        []any{tagPlatform},
				"summary":     "Read an async invocation's record",
				"description": "The record of an invocation queued with ?async=1, answered to the API key or token " +
					"that queued it only (one queued anonymously, to whoever knows its id). Anyone else, and " +
					"any id unknown or older than 24 hours, gets 404.",
				"parameters": []any{param(wire.HeaderRequestID)},
				"security":   security(opts, true),
				"responses": responses(jsonOK("The invocation's record.", schemaRef("Invocation")),
					slices.Concat(guarded, []wire.Code{wire.CodeNotFound, wire.CodeInternal})...),
			},
		},
		"/healthz": obj{"get": obj{
			"operationId": "healthz",
			"tags":        []any{tagPlatform},
			"summary":     "Liveness: the process is up",
			"parameters":  []any{param(wire.HeaderRequestID)},
			"security":    []any{obj{}},
			"responses":   responses(jsonOK("Alive.", schemaRef("Health")), wire.CodeInvalidArgument),
		}},
		"/readyz": obj{"get": obj{
			"operationId": "readyz",
			"tags":        []any{tagPlatform},
			"summary":     "Readiness: NATS connected, registry loaded, JetStream can store",
			"parameters":  []any{param(wire.HeaderRequestID)},
			"security":    []any{obj{}},
			"responses":   responses(jsonOK("Ready.", schemaRef("Health")), wire.CodeInvalidArgument, wire.CodeUnavailable),
		}},
	}
}

// functionPath is /fn/<name>: POST invokes, sync or async; GET describes.
func functionPath(s registry.Spec, opts Options) obj {
	public := s.AccessPolicy() == registry.AccessPublic
	describeErrors := slices.Concat(guarded, []wire.Code{wire.CodeNotFound})
	if !public {
		describeErrors = append(describeErrors, wire.CodePermissionDenied)
	}
	desc := s.Description
	if desc == "" {
		desc = "Function " + s.Name + "."
	}

	var notes []string
	if public {
		notes = append(notes, "Access: public; anyone may call it, with or without credentials.")
	} else {
		notes = append(notes, "Access: "+registry.AccessAuthenticated+"; it needs an API key or token granted "+s.Name+
			" (401 without one, 403 with one not granted it).")
	}
	if t := s.Timeout.D(); t > 0 {
		notes = append(notes, fmt.Sprintf("Timeout: %s; a sync call without an answer by then is 504.", t))
	}
	notes = append(notes, "Add ?async=1 or Prefer: respond-async to queue the invocation instead: 202, "+
		"then poll Location (GET /invocations/{id}); Idempotency-Key and Yard-Callback-Url apply to queued invocations only.")

	ok := jsonOK("The function's output.", schemaRef(outputKey(s.Name)))
	ok["202"] = obj{"$ref": "#/components/responses/Accepted"}
	post := obj{
		"operationId": "invoke_" + s.Name,
		"tags":        []any{s.Name},
		"summary":     "Invoke " + s.Name,
		"description": desc + "\n\n" + strings.Join(notes, "\n\n"),
		"parameters": []any{
			param("Async"), param("Prefer"), param(wire.HeaderRequestID), param(wire.HeaderTraceparent),
			param(wire.HeaderTracestate), param("Idempotency-Key"), param(wire.HeaderCallbackURL), param("X-Callback-Url"),
		},
		"requestBody": obj{
			"required": true,
			"description": "The function's input. application/json is the type to send; other +json types, " +
				"application/x-www-form-urlencoded (what curl -d sends) and no Content-Type are read as JSON too. " +
				"At most 1 MiB, UTF-8, strictly decoded (no duplicate keys), checked against the schema before it travels.",
			"content": obj{"application/json": obj{"schema": schemaRef(inputKey(s.Name))}},
		},
		"security":             security(opts, public),
		"responses":            responses(ok, invokeErrors...),
		"x-switchyard-access":  s.AccessPolicy(),
		"x-switchyard-version": s.Version,
	}
	if t := s.Timeout.D(); t > 0 {
		post["x-switchyard-timeout"] = t.String()
	}
	return obj{
		"summary":     s.Name,
		"description": desc,
		"post":        post,
		"get": obj{
			"operationId": "describe_" + s.Name,
			"tags":        []any{s.Name},
			"summary":     "Describe " + s.Name,
			"description": desc,
			"parameters":  []any{param(wire.HeaderRequestID)},
			"security":    security(opts, public),
			"responses":   responses(jsonOK("The function's live spec.", schemaRef("FunctionSpec")), describeErrors...),
		},
	}
}

// problemResponse is the response of code: a problem document whose code
// and status are fixed, with the headers the gateway adds to it.
func problemResponse(c wire.Code) obj {
	status := c.HTTPStatus()
	headers := obj{wire.HeaderRequestID: obj{"$ref": "#/components/headers/" + wire.HeaderRequestID}}
	switch c {
	case wire.CodeUnauthenticated:
		headers["WWW-Authenticate"] = obj{"$ref": "#/components/headers/WWW-Authenticate"}
	case wire.CodeResourceExhausted, wire.CodeUnavailable:
		headers["Retry-After"] = obj{"$ref": "#/components/headers/Retry-After"}
	case wire.CodeMethodNotAllowed:
		headers["Allow"] = obj{"description": "The methods the route takes.", "schema": obj{"type": "string"}}
	}
	return obj{
		"description": fmt.Sprintf("%s (%s): %s", http.StatusText(status), c, codeWhen[c]),
		"headers":     headers,
		"content": obj{"application/problem+json": obj{"schema": obj{
			"allOf": []any{schemaRef("Problem")},
			"properties": obj{
				"type":   obj{"const": problemTypePrefix + string(c)},
				"status": obj{"const": status},
				"code":   obj{"const": string(c)},
			},
		}}},
	}
}

// problemTypePrefix starts the type of every problem document the gateway
// writes; the code follows it.
const problemTypePrefix = "urn:switchyard:error:"

// codeWhen says when each code is answered.
var codeWhen = map[wire.Code]string{
	wire.CodeInvalidArgument:      "the body is not JSON or breaks the input schema (every field named by JSON pointer in errors), or a header is malformed",
	wire.CodeUnauthenticated:      "a credential that does not check out, or none where the function needs one",
	wire.CodePermissionDenied:     "the API key or token is not granted the function, or the function refused",
	wire.CodeNotFound:             "no such function or invocation (internal functions and other callers' invocations included), or the function said so",
	wire.CodeMethodNotAllowed:     "the route does not take the method",
	wire.CodeConflict:             "an Idempotency-Key reused with another body, or the function said so",
	wire.CodePayloadTooLarge:      "the body is over 1 MiB",
	wire.CodeUnsupportedMediaType: "the body's Content-Type is not JSON, or its charset is not UTF-8",
	wire.CodeResourceExhausted:    "over a rate limit (reason rate_limited), the async work queue is full, or the function said so; retry after Retry-After",
	wire.CodeInternal:             "the function failed, panicked or broke its output schema",
	wire.CodeUnavailable:          "no instance of the function runs, or a dependency is down; retry after Retry-After",
	wire.CodeDeadlineExceeded:     "the function did not answer within its timeout",
}
