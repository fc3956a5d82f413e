package functions_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/otelx/otlptest"
)

// TestShopTrace runs the shop under `yard up` with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at an OTLP/HTTP receiver in the test, and follows one order
// through real exports: the client's traceparent, the gateway, orders,
// catalog, inventory and payments over NATS requests, and notify through
// the orders.placed event, all in one trace with parent links that
// match; and an async order whose attempt is a child of the gateway's
// queue span.
func TestShopTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs yard up with the whole shop")
	}
	rcv := otlptest.Start(t)
	s := startShopEnv(t, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL,
		"OTEL_BSP_SCHEDULE_DELAY=100", // ms: export soon, not every 5 s
		"OTEL_SERVICE_NAME=",          // yard up's default ("yard"), not the caller's
		"OTEL_TRACES_SAMPLER=parentbased_always_on",
	})
	var restocked stockOut
	if err := s.request("inventory", map[string]any{"op": "restock", "items": []line{{"TEA-0001", 10}}}, &restocked); err != nil {
		t.Fatal(err)
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	post := func(orderID string, header map[string]string) int {
		body, _ := json.Marshal(map[string]any{"order_id": orderID, "items": []line{{"TEA-0001", 1}},
			"card": "4242424242424242", "email": "tracer@example.com"})
		req, _ := http.NewRequest(http.MethodPost, s.httpBase+"/fn/orders", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("order %s: %d %s", orderID, resp.StatusCode, b)
		}
		return resp.StatusCode
	}
	post("trace-sync", map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
	if code := post("trace-async", map[string]string{"Prefer": "respond-async"}); code != http.StatusAccepted {
		t.Fatalf("async order answered %d", code)
	}

	// One trace, from the client's traceparent to notify's event handler.
	var trace []otlptest.Span
	have := func(service, name string) *otlptest.Span {
		for k := range trace {
			if trace[k].Service == service && trace[k].Name == name {
				return &trace[k]
			}
		}
		return nil
	}
	natstest.WaitFor(t, time.Minute, "the order's spans from every hop", func() bool {
		trace = trace[:0]
		for _, sp := range rcv.Spans() {
			if sp.TraceID == traceID {
				trace = append(trace, sp)
			}
		}
		return have("yard", "POST /fn/orders") != nil && have("orders", "invoke orders") != nil &&
			have("inventory", "invoke inventory") != nil && have("payments", "invoke payments") != nil &&
			have("catalog", "invoke catalog") != nil && have("notify", "event orders.placed") != nil
	})
	byID := map[string]otlptest.Span{}
	for _, sp := range trace {
		byID[sp.SpanID] = sp
	}
	// parentOf checks that span's parent is the wanted one.
	parentOf := func(child, parent *otlptest.Span) {
		t.Helper()
		if child == nil || parent == nil {
			t.Fatalf("missing span: %v %v\n%s", child, parent, dump(trace))
		}
		if child.ParentSpanID != parent.SpanID {
			t.Errorf("%s/%s has parent %s, want %s/%s (%s)\n%s", child.Service, child.Name, child.ParentSpanID,
				parent.Service, parent.Name, parent.SpanID, dump(trace))
		}
	}
	gw := have("yard", "POST /fn/orders")
	if gw.ParentSpanID != "00f067aa0ba902b7" || gw.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("gateway span is not the server child of the client's traceparent: %+v", gw)
	}
	if gw.Attributes["yard.function"] != "orders" || gw.Attributes["yard.mode"] != "sync" || gw.Attributes["http.response.status_code"] != "200" {
		t.Errorf("gateway span attributes: %v", gw.Attributes)
	}
	parentOf(have("yard", "call orders"), gw)
	orders := have("orders", "invoke orders")
	parentOf(orders, have("yard", "call orders"))
	for _, target := range []string{"catalog", "inventory", "payments"} {
		call := have("orders", "call "+target)
		parentOf(call, orders)
		served := have(target, "invoke "+target)
		parentOf(served, call)
		if served.Attributes["yard.function"] != target || served.Attributes["yard.outcome"] != "ok" ||
			served.Attributes["yard.version"] == "" || served.Attributes["yard.instance"] == "" {
			t.Errorf("%s span attributes: %v", target, served.Attributes)
		}
	}
	publish := have("orders", "publish orders.placed")
	parentOf(publish, orders)
	event := have("notify", "event orders.placed")
	parentOf(event, publish)
	if event.Kind != tracepb.Span_SPAN_KIND_CONSUMER || event.Attributes["yard.attempt"] != "1" || event.Attributes["yard.outcome"] != "ok" {
		t.Errorf("notify's event span: %+v", event)
	}

	// The async order: the gateway's queue span, then the attempt.
	var queue, attempt *otlptest.Span
	natstest.WaitFor(t, time.Minute, "the async order's spans", func() bool {
		spans := rcv.Spans()
		for k := range spans {
			switch sp := &spans[k]; {
			case sp.Service == "yard" && sp.Name == "queue orders":
				queue = sp
			case sp.Service == "orders" && sp.Name == "async orders":
				attempt = sp
			}
		}
		return queue != nil && attempt != nil
	})
	if attempt.TraceID != queue.TraceID || attempt.ParentSpanID != queue.SpanID || queue.Kind != tracepb.Span_SPAN_KIND_PRODUCER {
		t.Errorf("the async attempt %+v is not the child of the queue span %+v", attempt, queue)
	}
	if attempt.Attributes["yard.attempt"] != "1" || attempt.Attributes["yard.outcome"] != "ok" ||
		attempt.Attributes["yard.queue_wait_ms"] == "" || attempt.Attributes["yard.invocation_id"] != queue.Attributes["yard.invocation_id"] {
		t.Errorf("async attempt attributes %v, queue %v", attempt.Attributes, queue.Attributes)
	}
}

func dump(spans []otlptest.Span) string {
	var b strings.Builder
	slices.SortFunc(spans, func(a, b otlptest.Span) int { return strings.Compare(a.Service+a.Name, b.Service+b.Name) })
	for _, sp := range spans {
		fmt.Fprintf(&b, "  %s %s/%s parent %s %v\n", sp.SpanID, sp.Service, sp.Name, sp.ParentSpanID, sp.Attributes)
	}
	return b.String()
}
