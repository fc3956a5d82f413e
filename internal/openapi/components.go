package openapi

import (
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// components returns what every document shares: the problem responses,
// the headers and parameters the gateway reads and writes, the security
// schemes and the platform's own schemas. Function schemas are added to
// its "schemas" by Document.
func components(opts Options) obj {
	resps := obj{"Accepted": obj{
		"description": "Queued: JetStream has stored the invocation. Poll Location for its record.",
		"headers": obj{
			wire.HeaderRequestID: obj{"$ref": "#/components/headers/" + wire.HeaderRequestID},
			"Location": obj{
				"description": "The invocation's record: /invocations/{id}.",
				"required":    true,
				"schema":      obj{"type": "string", "format": "uri-reference"},
			},
		},
		"content": obj{"application/json": obj{"schema": schemaRef("Accepted")}},
	}}
	for _, c := range wire.Codes() {
		resps[string(c)] = problemResponse(c)
	}
	schemes := obj{schemeAPIKey: obj{
		"type":         "http",
		"scheme":       "bearer",
		"bearerFormat": "yk_<id>_<secret>",
		"description":  "A Switchyard API key (yard keys create), granted the functions it may call.",
	}}
	if opts.OIDC {
		schemes[schemeOIDC] = obj{
			"type":         "http",
			"scheme":       "bearer",
			"bearerFormat": "JWT",
			"description":  "An OIDC token from the issuer the gateway trusts, granted functions by its claims.",
		}
	}
	return obj{
		"schemas":         platformSchemas(),
		"responses":       resps,
		"parameters":      parameters(),
		"headers":         headers(),
		"securitySchemes": schemes,
	}
}

func parameters() obj {
	header := func(name, description string, schema obj) obj {
		return obj{"name": name, "in": "header", "description": description, "schema": schema}
	}
	return obj{
		"Async": obj{
			"name": "async", "in": "query",
			"description": "1 or true: queue the invocation and answer 202 instead of waiting for the output.",
			"schema":      obj{"type": "string", "enum": []any{"1", "true"}},
		},
		"Prefer": header("Prefer", "respond-async queues the invocation, as ?async=1 does (RFC 7240).",
			obj{"type": "string", "examples": []any{"respond-async"}}),
		wire.HeaderRequestID: header(wire.HeaderRequestID,
			"The caller's id for the request, carried to the function and into logs and records; the gateway makes one when none is sent, and answers it in every response.",
			obj{"type": "string", "maxLength": wire.MaxRequestIDLen, "pattern": "^[A-Za-z0-9._:-]*$"}),
		wire.HeaderTraceparent: header(wire.HeaderTraceparent, "W3C Trace Context parent, passed on to the function.", obj{"type": "string"}),
		wire.HeaderTracestate:  header(wire.HeaderTracestate, "W3C Trace Context state, passed on to the function.", obj{"type": "string"}),
		"Idempotency-Key": header("Idempotency-Key",
			"Async only: the same key from the same caller names the same invocation; reused with another body it is 409.",
			obj{"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}),
		wire.HeaderCallbackURL: header(wire.HeaderCallbackURL,
			"Async only: an http(s) URL the gateway POSTs the finished invocation's record to.",
			obj{"type": "string", "format": "uri"}),
		"X-Callback-Url": func() obj {
			p := header("X-Callback-Url", "Async only: read when "+wire.HeaderCallbackURL+" is absent.", obj{"type": "string", "format": "uri"})
			p["deprecated"] = true
			return p
		}(),
		"InvocationId": obj{
			"name": "id", "in": "path", "required": true,
			"description": "The id from the 202 that queued the invocation.",
			"schema":      obj{"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
		},
	}
}

func headers() obj {
	return obj{
		wire.HeaderRequestID: obj{
			"description": "The request's id: the caller's, or one the gateway made.",
			"schema":      obj{"type": "string"},
		},
		"Retry-After": obj{
			"description": "Seconds to wait before trying again.",
			"schema":      obj{"type": "integer", "minimum": 1},
		},
		"WWW-Authenticate": obj{
			"description": `The Bearer challenge (RFC 6750), with error="invalid_token" when a credential was refused.`,
			"schema":      obj{"type": "string"},
		},
	}
}

// platformSchemas are the bodies of the platform's own routes. A test
// holds their properties to the JSON fields of the Go types they mirror.
func platformSchemas() obj {
	str := obj{"type": "string"}
	dateTime := obj{"type": "string", "format": "date-time"}
	count := obj{"type": "integer", "minimum": 0}
	strings := obj{"type": "array", "items": str}
	duration := obj{"type": "string", "description": "A Go duration, such as 30s or 2m0s."}
	codes := make([]any, 0, len(wire.Codes()))
	for _, c := range wire.Codes() {
		codes = append(codes, string(c))
	}
	reason := obj{"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$",
		"description": "A machine-readable refinement of code chosen by the function, e.g. card_declined."}
	return obj{
		"Problem": obj{
			"type":        "object",
			"description": "An RFC 9457 problem document carrying a Switchyard error. Switch on code and reason, never on detail.",
			"required":    []any{"type", "title", "status", "code"},
			"properties": obj{
				"type":       obj{"type": "string", "pattern": "^urn:switchyard:error:[a-z_]+$"},
				"title":      str,
				"status":     obj{"type": "integer"},
				"detail":     str,
				"code":       obj{"$ref": "#/components/schemas/Code"},
				"reason":     reason,
				"errors":     obj{"type": "array", "items": schemaRef("FieldError")},
				"request_id": str,
			},
		},
		"Code": obj{"type": "string", "enum": codes, "description": "The stable error code; each has one HTTP status."},
		"FieldError": obj{
			"type":     "object",
			"required": []any{"pointer", "message"},
			"properties": obj{
				"pointer": obj{"type": "string", "description": "JSON pointer to the offending value; empty for the whole body."},
				"message": str,
			},
		},
		"Error": obj{
			"type":        "object",
			"description": "An error as functions reply it: the body of a failed invocation's record.",
			"required":    []any{"code", "message"},
			"properties": obj{
				"code":    schemaRef("Code"),
				"reason":  reason,
				"message": str,
				"errors":  obj{"type": "array", "items": schemaRef("FieldError")},
			},
		},
		"Accepted": obj{
			"type":     "object",
			"required": []any{"id", "status", "status_url"},
			"properties": obj{
				"id":         str,
				"status":     schemaRef("InvocationStatus"),
				"status_url": obj{"type": "string", "format": "uri-reference"},
			},
		},
		"InvocationStatus": obj{
			"type": "string", "enum": []any{"queued", "running", "succeeded", "failed", "dead"},
			"description": "failed: the last attempt failed and another is scheduled; dead: every attempt failed (see the dead letters).",
		},
		"Invocation": obj{
			"type":     "object",
			"required": []any{"id", "function", "status", "attempts", "created_at"},
			"properties": obj{
				"id":              str,
				"function":        str,
				"status":          schemaRef("InvocationStatus"),
				"attempts":        count,
				"max_attempts":    count,
				"request_id":      str,
				"body_hash":       str,
				"created_at":      dateTime,
				"started_at":      dateTime,
				"finished_at":     dateTime,
				"next_attempt_at": dateTime,
				"result":          obj{"description": "The function's output, once it succeeded."},
				"error":           schemaRef("Error"),
				"dlq_seq":         obj{"type": "integer", "minimum": 0, "description": "The dead letter's sequence, for replay."},
				"seq":             obj{"type": "integer", "minimum": 0},
			},
		},
		"FunctionList": obj{
			"type":       "object",
			"required":   []any{"functions"},
			"properties": obj{"functions": obj{"type": "array", "items": schemaRef("FunctionSpec")}},
		},
		"FunctionSpec": obj{
			"type":        "object",
			"description": "A function's live spec, as the registry holds it; fields are only ever added.",
			"required":    []any{"name", "input_schema", "output_schema", "schema_hash", "timeout"},
			"properties": obj{
				"name":          obj{"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$"},
				"description":   str,
				"version":       count,
				"input_schema":  obj{"description": "JSON Schema 2020-12 of the input."},
				"output_schema": obj{"description": "JSON Schema 2020-12 of the output."},
				"schema_hash":   str,
				"timeout":       duration,
				"concurrency":   count,
				"max_attempts":  count,
				"backoff":       obj{"type": "array", "items": duration},
				"updated_at":    dateTime,
				"artifact":      obj{"type": "object"},
				"min_instances": count,
				"max_instances": count,
				"idle_timeout":  duration,
				"deployed_at":   dateTime,
				"schedules":     obj{"type": "array", "items": obj{"type": "object"}},
				"calls":         strings,
				"publishes":     strings,
				"buckets":       strings,
				"events":        strings,
				"event_options": obj{"type": "object", "description": "Per subscription subject: where a new subscription starts (from: new, start, a stream sequence or an RFC 3339 time) and whether it takes one event at a time (ordered).",
					"additionalProperties": obj{"type": "object", "properties": obj{"from": str, "ordered": obj{"type": "boolean"}}}},
				"streams":         obj{"type": "array", "items": obj{"type": "object"}},
				"access":          obj{"type": "string", "enum": []any{"public", "authenticated", "internal"}},
				"gateway_subject": obj{"type": "boolean"},
				"env_names":       obj{"type": "array", "items": str, "description": "The names of the function's environment variables; their values are never served."},
			},
		},
		"Health": obj{
			"type":       "object",
			"required":   []any{"status"},
			"properties": obj{"status": obj{"type": "string", "enum": []any{"ok", "ready"}}},
		},
	}
}
