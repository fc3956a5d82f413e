package openapi

import (
	"slices"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

const tagOps = "Operator"

// opsPaths are the /ops routes, described in the documents of operator
// keys only: nobody else can call them.
func opsPaths() obj {
	sec := []any{obj{schemeAPIKey: []any{}}}
	errs := slices.Concat(guarded, []wire.Code{wire.CodePermissionDenied})
	name := obj{"name": "name", "in": "path", "required": true, "description": "The function.",
		"schema": obj{"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$"}}
	limit := func(def, max int, what string) obj {
		return obj{"name": "limit", "in": "query", "description": "The most " + what + " to answer.",
			"schema": obj{"type": "integer", "minimum": 0, "maximum": max, "default": def}}
	}
	get := func(id, summary, desc string, params []any, ok obj, more ...wire.Code) obj {
		return obj{"get": obj{
			"operationId": id, "tags": []any{tagOps}, "summary": summary, "description": desc,
			"parameters": append([]any{param(wire.HeaderRequestID)}, params...),
			"security":   sec,
			"responses":  responses(ok, slices.Concat(errs, more)...),
		}}
	}
	replayed := obj{"202": obj{
		"description": "Back in the work queue; the record says dead until an instance takes it.",
		"headers": obj{
			wire.HeaderRequestID: obj{"$ref": "#/components/headers/" + wire.HeaderRequestID},
			"Location":           obj{"description": "The invocation's record.", "required": true, "schema": obj{"type": "string", "format": "uri-reference"}},
		},
		"content": obj{"application/json": obj{"schema": schemaRef("Replayed")}},
	}}
	return obj{
		"/ops/functions": get("opsFunctions", "How each function runs",
			"Instances (those answering a micro PING within 300 ms), state and the next schedule run of every function.",
			nil, jsonOK("The functions.", schemaRef("OpsFunctionList")), wire.CodeUnavailable),
		"/ops/functions/{name}/instances": get("opsInstances", "A function's instances and their counters",
			"Counters only grow while an instance lives: a rate is the change between two reads.",
			[]any{name}, jsonOK("The instances.", schemaRef("OpsInstanceList")), wire.CodeNotFound),
		"/ops/functions/{name}/logs": get("opsLogs", "A function's log lines",
			"Without after, the newest lines kept in YARD_LOGS; with it, the lines after that sequence, oldest first. Pass next as after to poll.",
			[]any{name, obj{"name": "after", "in": "query", "description": "A sequence from an earlier answer's next.",
				"schema": obj{"type": "integer", "minimum": 0}}, limit(100, 1000, "lines")},
			jsonOK("The lines.", schemaRef("LogLines")), wire.CodeNotFound, wire.CodeUnavailable),
		"/ops/functions/{name}/invocations": get("opsInvocations", "A function's recent invocations",
			"Its most recently updated records, newest first, among the latest updates of yard_results.",
			[]any{name, limit(20, 200, "records")}, jsonOK("The records.", schemaRef("InvocationList")), wire.CodeNotFound, wire.CodeUnavailable),
		"/ops/functions/{name}/versions": get("opsVersions", "A function's deployed versions",
			"Every recorded version, newest first; current marks the live one. A function registered by a running instance has none.",
			[]any{name}, jsonOK("The versions.", schemaRef("VersionList")), wire.CodeNotFound, wire.CodeUnavailable),
		"/ops/dlq": get("opsDeadLetters", "Dead letters",
			"Async invocations whose every attempt failed, oldest first, with their input.",
			[]any{obj{"name": "function", "in": "query", "description": "Only this function's.",
				"schema": obj{"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$"}}, limit(100, 1000, "dead letters")},
			jsonOK("The dead letters.", schemaRef("DeadLetterList")), wire.CodeUnavailable),
		"/ops/dlq/{id}/replay": obj{
			"parameters": []any{param("InvocationId")},
			"post": obj{
				"operationId": "opsReplay", "tags": []any{tagOps}, "summary": "Replay a dead letter",
				"description": "Sends the dead letter back to the work queue with its attempts reset and removes it from the DLQ; recorded in the audit log. 404 when there is none (replayed already).",
				"parameters":  []any{param(wire.HeaderRequestID)},
				"security":    sec,
				"responses":   responses(replayed, slices.Concat(errs, []wire.Code{wire.CodeNotFound, wire.CodeMethodNotAllowed, wire.CodeUnavailable})...),
			},
		},
	}
}

// opsSchemas are the bodies of the /ops routes.
func opsSchemas() obj {
	str := obj{"type": "string"}
	count := obj{"type": "integer", "minimum": 0}
	dateTime := obj{"type": "string", "format": "date-time"}
	return obj{
		"OpsFunctionList": obj{"type": "object", "required": []any{"functions"},
			"properties": obj{"functions": obj{"type": "array", "items": schemaRef("OpsFunction")}}},
		"OpsFunction": obj{"type": "object", "required": []any{"name", "version", "access", "instances", "state"},
			"properties": obj{
				"name": str, "description": str, "version": count,
				"access":    obj{"type": "string", "enum": []any{"public", "authenticated", "internal"}},
				"instances": count,
				"state":     obj{"type": "string", "enum": []any{"running", "scaled to zero", "down"}},
				"next_run":  dateTime,
				"schedules": obj{"type": "array", "items": str},
			}},
		"OpsInstanceList": obj{"type": "object", "required": []any{"function", "at", "instances"},
			"properties": obj{"function": str, "at": dateTime, "instances": obj{"type": "array", "items": schemaRef("OpsInstance")}}},
		"OpsInstance": obj{"type": "object", "required": []any{"id", "version", "started", "requests"},
			"properties": obj{
				"id": str, "version": str, "started": dateTime, "requests": count, "processing_time_ns": count,
				"in_flight": count, "concurrency": count, "completed": count, "failed": count, "panics": count,
				"handler_seconds": obj{"type": "number", "minimum": 0}, "retries": count, "dead_letters": count,
				"ticks_run": count, "ticks_skipped": count,
				"breakers": obj{"type": "object", "description": "The instance's circuit breakers on the functions it calls, by target.",
					"additionalProperties": obj{"type": "string", "enum": []any{"closed", "open", "half-open"}}},
			}},
		"LogLines": obj{"type": "object", "required": []any{"function", "lines", "next"},
			"properties": obj{"function": str, "lines": obj{"type": "array", "items": schemaRef("LogLine")}, "next": count}},
		"LogLine": obj{"type": "object", "required": []any{"seq", "instance", "time", "line"},
			"properties": obj{"seq": count, "instance": str, "time": dateTime, "line": str}},
		"DeadLetterList": obj{"type": "object", "required": []any{"dead_letters"},
			"properties": obj{"dead_letters": obj{"type": "array", "items": schemaRef("DeadLetter")}}},
		"DeadLetter": obj{"type": "object", "required": []any{"seq", "id", "function", "attempts", "dead_at", "payload"},
			"properties": obj{
				"seq": count, "id": str, "function": str, "attempts": count, "error": schemaRef("Error"),
				"created_at": dateTime, "dead_at": dateTime, "payload": obj{"description": "The invocation's input."},
			}},
		"InvocationList": obj{"type": "object", "required": []any{"function", "invocations"},
			"properties": obj{"function": str, "invocations": obj{"type": "array", "items": schemaRef("Invocation")}}},
		"VersionList": obj{"type": "object", "required": []any{"function", "versions"},
			"properties": obj{"function": str, "versions": obj{"type": "array", "items": schemaRef("OpsVersion")}}},
		"OpsVersion": obj{"type": "object", "required": []any{"version", "schema_hash", "current"},
			"properties": obj{"version": count, "deployed_at": dateTime, "schema_hash": str, "description": str,
				"artifact": obj{"type": "object"}, "current": obj{"type": "boolean"}}},
		"Replayed": obj{"type": "object", "required": []any{"id", "function", "status", "status_url"},
			"properties": obj{"id": str, "function": str, "status": schemaRef("InvocationStatus"),
				"status_url": obj{"type": "string", "format": "uri-reference"}}},
	}
}
