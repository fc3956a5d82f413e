package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/gateway/console"
	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// greet is the public function the console lists and invokes.
type greetIn struct {
	Name     string `json:"name" jsonschema:"minLength=1,maxLength=100,description=who to greet"`
	Language string `json:"language,omitempty" jsonschema:"enum=en,enum=fr,enum=de,enum=es,default=en,description=language of the greeting"`
}

type greetOut struct {
	Message string `json:"message"`
}

var greetings = map[string]string{"": "Hello", "en": "Hello", "fr": "Bonjour", "de": "Hallo", "es": "Hola"}

func greet(ctx context.Context, in greetIn) (greetOut, error) {
	return greetOut{Message: greetings[in.Language] + ", " + in.Name + "!"}, nil
}

// quote needs a key, and has numbers with bounds, a boolean, a nested
// object and an array, so the form has every kind of control.
type quoteIn struct {
	SKU      string       `json:"sku" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$,description=stock keeping unit such as TEA-0001"`
	Quantity int          `json:"quantity" jsonschema:"minimum=1,maximum=1000"`
	Gift     bool         `json:"gift,omitempty"`
	Shipping quoteAddress `json:"shipping"`
	Notes    []string     `json:"notes,omitempty" jsonschema:"maxItems=3"`
}

type quoteAddress struct {
	Country string `json:"country" jsonschema:"enum=DE,enum=FR,enum=GB"`
	Express bool   `json:"express,omitempty"`
}

type quoteOut struct {
	Total int `json:"total"`
}

func quote(ctx context.Context, in quoteIn) (quoteOut, error) {
	total := 250 * in.Quantity
	if in.Gift {
		total += 300
	}
	return quoteOut{Total: total}, nil
}

// platform is a gateway on real HTTP, with the console mounted at
// /console/ as the gateway will mount it, in front of an embedded NATS
// server running greet and quote (and markup, when asked). It returns the
// base URL, an operator API key (as the link yard up prints has) and the
// functions' NATS connection.
func platform(t *testing.T, markup bool) (base, key string, nc *nats.Conn) {
	t.Helper()
	s := natstest.Run(t)
	nc = natstest.Connect(t, s)
	fntest.Platform(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err = apikeys.Create(ctx, js, "console", nil, "100000/s", apikeys.AsOperator())
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(ctx, natstest.Connect(t, s), gateway.Config{AnonymousRate: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	start(t, nc, fn.Config{Name: "greet", Description: "Says hello", Access: "public"}, fn.Handle(greet))
	start(t, nc, fn.Config{Name: "quote", Description: "Prices an order line"}, fn.Handle(quote))
	start(t, nc, fn.Config{Name: "flaky", Description: "Fails while the ledger is closed"}, fn.Handle(flaky, fn.WithRetry(1, time.Millisecond)))
	if markup {
		// A description written as markup must reach the page as text.
		start(t, nc, fn.Config{Name: "markup", Access: "public", Description: markupText}, fn.Handle(greet))
	}

	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.Handler())
	mux.Handle("/", g)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// Ready when the gateway knows the key and every function.
	deadline := time.Now().Add(15 * time.Second)
	paths := []string{"/fn/greet", "/fn/quote", "/fn/flaky"}
	if markup {
		paths = append(paths, "/fn/markup")
	}
	for _, path := range paths {
		for {
			status := get(t, srv.URL+path, key)
			if status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %d, want 200 before the deadline", path, status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return srv.URL, key, nc
}

// ledgerClosed makes flaky fail, so its async invocations end as dead
// letters the console replays.
var ledgerClosed atomic.Bool

func flaky(ctx context.Context, in greetIn) (greetOut, error) {
	if ledgerClosed.Load() {
		return greetOut{}, fn.Errorf(fn.CodeUnavailable, "the ledger is closed")
	}
	return greetOut{Message: "booked for " + in.Name}, nil
}

const markupText = `<img src=x onerror="window.pwned=1"> & <b>bold</b>`

func start(t *testing.T, nc *nats.Conn, cfg fn.Config, h *fn.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := fn.Start(ctx, nc, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = inst.Stop(ctx)
	})
}

// send makes one request with the key and returns the answer, read.
func send(t *testing.T, method, url, key, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// post invokes a function over HTTP and returns the status.
func post(t *testing.T, url, key, body string) int {
	code, _ := send(t, http.MethodPost, url, key, body)
	return code
}

// queue queues an async invocation and returns its id.
func queue(t *testing.T, url, key, body string) string {
	t.Helper()
	code, b := send(t, http.MethodPost, url+"?async=1", key, body)
	var acc struct{ ID string }
	if err := json.Unmarshal(b, &acc); err != nil || code != http.StatusAccepted || acc.ID == "" {
		t.Fatalf("queue: %d %s", code, b)
	}
	return acc.ID
}

// status reads an invocation's status.
func status(t *testing.T, base, key, id string) string {
	_, b := send(t, http.MethodGet, base+"/invocations/"+id, key, "")
	var rec struct{ Status string }
	_ = json.Unmarshal(b, &rec)
	return rec.Status
}

func get(t *testing.T, url, key string) int {
	code, _ := send(t, http.MethodGet, url, key, "")
	return code
}

// chromium finds Debian's chromium (or another Chrome) on PATH; the test
// is skipped without one.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH: install Debian's chromium (apt-get install -y chromium) to run the console's browser test")
	return ""
}

// browser is one headless Chromium tab, closed when the test ends, whose
// console errors and uncaught exceptions fail the test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	mu   sync.Mutex
	errs []string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, base: base}
	// The first action starts the browser, and must run on the tab's own
	// context (a shorter-lived one would close the browser with it), so
	// its deadline is kept here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start Chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		cancelTab()
		t.Fatal("Chromium did not start within 60s")
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			// Answers of 4xx are the point of some steps; the browser logs
			// each as a network error, which is not the page's fault.
			if m.IsException() || m.Type == chromedp.ConsoleError && m.Source != "network" {
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Sprintf("%s (%s:%d:%d)", m, m.URL, m.Line+1, m.Column+1))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errs {
			t.Errorf("browser console: %s", e)
		}
	})
	return b
}

// do runs steps with a deadline, failing the test with what it was doing.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// set sets a control's value, as SetValue does, and tells the page with
// input and change events.
func (b *browser) set(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		el.value = %q;
		el.dispatchEvent(new Event("input", {bubbles: true}));
		el.dispatchEvent(new Event("change", {bubbles: true}));
	})()`, sel, value))
}

// until waits, within a deadline, for a JavaScript expression to be true.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	b.do("wait for "+what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second)))
}

// screenshot saves the page as docs/console-<name>.png when
// YARD_SCREENSHOTS=1, so that ordinary runs leave the files alone.
// Long pages are taken from where they are scrolled to, one screen high.
func (b *browser) screenshot(name string, full bool) {
	b.t.Helper()
	if os.Getenv("YARD_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	take := chromedp.CaptureScreenshot()
	if full {
		take = chromedp.FullScreenshot(100) // 100: PNG
	}
	png, err := chromedp.Run(ctx, take)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("..", "..", "docs", "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s", path)
}

// noOverflow checks that the page is no wider than the viewport.
func (b *browser) noOverflow(where string) {
	b.t.Helper()
	sw := eval[int](b, `document.documentElement.scrollWidth`)
	cw := eval[int](b, `document.documentElement.clientWidth`)
	if sw > cw {
		wide := eval[string](b, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 5).map(e => e.tagName + "." + e.className).join(", ")`)
		b.t.Errorf("%s: scrollWidth %d > clientWidth %d: the page overflows sideways (widest: %s)", where, sw, cw, wide)
	}
}

func TestConsoleInBrowser(t *testing.T) {
	chromium(t)
	base, key, nc := platform(t, false)
	b := newBrowser(t, base)

	// Signed in by the link `yard up` prints: the key moves from the
	// address into sessionStorage and out of the address bar.
	b.do("open the console", chromedp.Navigate(base+"/console/#key="+key))
	b.until("the functions", `!!document.querySelector('#functions a[href="#/fn/greet"]')`)
	if href := eval[string](b, `location.href`); strings.Contains(href, "yk_") || !strings.HasSuffix(href, "/console/#/") {
		t.Errorf("address after signing in: %s, want the key gone", href)
	}
	if got := eval[string](b, `sessionStorage.getItem("switchyard.console.key") || ""`); got != key {
		t.Errorf("sessionStorage holds %q, want the key", got)
	}
	if !eval[bool](b, `!!document.querySelector('#functions a[href="#/fn/quote"]')`) {
		t.Error("quote (granted to the key, not public) is not listed: the key was not sent")
	}
	if !eval[bool](b, `!!document.querySelector("#sign-out")`) {
		t.Error("no sign-out button once signed in")
	}
	if !eval[bool](b, `!!document.querySelector(".unavailable")`) {
		t.Error("no section saying what the API does not serve yet")
	}
	b.screenshot("functions", true)

	// A function page: the form made from the input schema invokes it.
	b.do("open greet", chromedp.Click(`#functions a[href="#/fn/greet"]`))
	b.until("greet's form", `!!document.querySelector("#invoke") && !!document.querySelector('input[data-pointer="/name"]')`)
	if !eval[bool](b, `document.querySelector("table.schema").textContent.includes("who to greet")`) {
		t.Error("the input schema is not shown with its descriptions")
	}
	if got := eval[string](b, `[...document.querySelector('select[data-pointer="/language"]').options].map(o => o.textContent).join(",")`); !strings.Contains(got, "en,fr,de,es") {
		t.Errorf("language options %q, want the enum as a select", got)
	}
	b.do("fill greet's form",
		chromedp.SendKeys(`input[data-pointer="/name"]`, "Ada"),
		b.set(`select[data-pointer="/language"]`, `"fr"`),
		chromedp.Click(`#invoke`))
	b.until("greet's reply", `(document.querySelector("#result pre.reply") || {}).textContent?.includes('"message": "Bonjour, Ada!"')`)
	b.screenshot("function", true)

	// A value the schema refuses: the gateway's field error shows next to
	// the field it names.
	b.do("clear the name", b.set(`input[data-pointer="/name"]`, ""), chromedp.Click(`#invoke`))
	b.until("the field error", `(() => {
		const err = document.querySelector('[data-error-for="/name"]');
		const input = document.querySelector('input[data-pointer="/name"]');
		return !!err && !err.hidden && err.textContent.length > 0 && input.getAttribute("aria-invalid") === "true" &&
			input.getAttribute("aria-describedby").includes(err.id) &&
			document.querySelector("#result .problem").textContent.includes("invalid_argument");
	})()`)
	b.screenshot("field-error", true)

	// By keyboard alone, from a fresh load: Tab to the name, type it, Tab
	// on to the invoke button and press Enter.
	b.do("reload greet", chromedp.Reload())
	b.until("greet's form", `!!document.querySelector("#invoke")`)
	typed, reached := false, false
	for range 60 {
		b.do("press Tab", chromedp.KeyEvent(kb.Tab))
		if !typed && eval[bool](b, `document.activeElement.dataset.pointer === "/name"`) {
			b.do("type a name", chromedp.KeyEvent("Grace"))
			typed = true
		}
		if reached = eval[string](b, `document.activeElement.id`) == "invoke"; reached {
			break
		}
	}
	if !typed || !reached {
		t.Fatalf("Tab did not reach the name field (%v) and then the invoke button (%v)", typed, reached)
	}
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.until("the reply to the keyboard", `(document.querySelector("#result pre.reply") || {}).textContent?.includes("Hello, Grace!")`)

	// Every kind of control, and an async invocation followed to its end.
	b.do("open quote", chromedp.Navigate(base+"/console/#/fn/quote"))
	b.until("quote's form", `!!document.querySelector('input[data-pointer="/quantity"]')`)
	for sel, what := range map[string]string{
		`input[type="number"][data-pointer="/quantity"][min="1"][max="1000"]`:         "a number input with min and max",
		`input[type="checkbox"][data-pointer="/gift"]`:                                "a checkbox",
		`fieldset[data-pointer="/shipping"] select[data-pointer="/shipping/country"]`: "a nested object's enum as a select",
		`textarea.json[data-pointer="/notes"]`:                                        "a JSON textarea for the array",
	} {
		if !eval[bool](b, fmt.Sprintf(`!!document.querySelector(%q)`, sel)) {
			t.Errorf("quote's form has no %s (%s)", what, sel)
		}
	}
	b.do("fill quote with too many",
		chromedp.SendKeys(`input[data-pointer="/sku"]`, "TEA-0001"),
		chromedp.SendKeys(`input[data-pointer="/quantity"]`, "5000"),
		chromedp.Click(`#invoke`))
	b.until("the quantity's error", `(() => { const e = document.querySelector('[data-error-for="/quantity"]'); return !!e && !e.hidden && e.textContent.length > 0 })()`)
	b.do("fill quote",
		b.set(`input[data-pointer="/quantity"]`, "2"),
		chromedp.Click(`input[data-pointer="/gift"]`),
		b.set(`select[data-pointer="/shipping/country"]`, `"FR"`),
		b.set(`textarea[data-pointer="/notes"]`, `["ring twice"]`),
		chromedp.Click(`input[type="radio"][value="async"]`),
		chromedp.Click(`#invoke`))
	b.until("the queued invocation", `!!document.querySelector("#follow")`)
	if eval[bool](b, `!document.querySelector('[data-error-for="/quantity"]').hidden`) {
		t.Error("the quantity's error stayed after a good invocation")
	}
	b.do("follow it", chromedp.Click(`#follow`))
	b.until("the invocation to succeed", `(document.querySelector("#inv-status") || {}).textContent === "succeeded"`)
	if !eval[bool](b, `document.querySelector("pre.reply").textContent.includes('"total": 800')`) {
		t.Errorf("the invocation's result is not shown: %s", eval[string](b, `document.querySelector("main").textContent`))
	}

	// The operator's view of a function: its instances with live rates,
	// and its log lines as agents ship them, followed as they come.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.StreamLogs, Subjects: []string{wire.LogsPrefix + ">"}}); err != nil {
		t.Fatal(err)
	}
	logLine := func(line string) {
		if _, err := js.Publish(ctx, wire.LogsPrefix+"greet.greet-v1-a1b2", []byte(line+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	logLine("level=INFO msg=serving fn=greet")
	b.do("open greet", chromedp.Navigate(base+"/console/#/fn/greet"))
	b.until("greet's instance", `document.querySelectorAll("#instances tbody th code").length === 1`)
	b.until("the first log line", `(document.querySelector("#logs") || {}).textContent?.includes("msg=serving fn=greet")`)
	for range 5 {
		if code := post(t, base+"/fn/greet", key, `{"name":"Ada"}`); code != http.StatusOK {
			t.Fatalf("greet: %d", code)
		}
	}
	logLine("level=INFO msg=greeted name=Ada")
	b.until("a rate from two reads", `document.querySelector("#rates").dataset.rate !== "" && !document.querySelector("#instances td.rate").textContent.includes("…")`)
	if got := eval[string](b, `document.querySelector('#instances td[data-label="Requests"]').textContent`); got == "0" {
		t.Errorf("greet's instance shows %s requests after 5 calls", got)
	}
	b.until("the new log line", `document.querySelector("#logs").textContent.includes("msg=greeted name=Ada")`)
	b.do("scroll to the instances", chromedp.Evaluate[chromedp.Void](`document.querySelector("#instances-title").scrollIntoView()`))
	b.screenshot("instances", false)

	// Dead letters: two async invocations fail their one attempt; one is
	// replayed from the list, the other from its record, once the ledger
	// opens, and both succeed.
	ledgerClosed.Store(true)
	var ids []string
	for _, who := range []string{"Ada", "Grace"} {
		id := queue(t, base+"/fn/flaky", key, `{"name":"`+who+`"}`)
		natstest.WaitFor(t, 20*time.Second, "flaky's invocation to die", func() bool { return status(t, base, key, id) == "dead" })
		ids = append(ids, id)
	}
	b.do("open the invocations", chromedp.Navigate(base+"/console/#/invocations"))
	b.until("both dead letters", fmt.Sprintf(`!!document.querySelector('#dlq tr[data-id=%q]') && !!document.querySelector('#dlq tr[data-id=%q]')`, ids[0], ids[1]))
	if !eval[bool](b, fmt.Sprintf(`document.querySelector('#dlq tr[data-id=%q]').textContent.includes("the ledger is closed")`, ids[0])) {
		t.Error("a dead letter's row does not show its last error")
	}
	b.do("scroll to the dead letters", chromedp.Evaluate[chromedp.Void](`document.querySelector("#dlq-title").scrollIntoView()`))
	b.screenshot("dead-letters", false)
	ledgerClosed.Store(false)
	b.do("replay the first", chromedp.Click(fmt.Sprintf(`#dlq tr[data-id=%q] button[data-replay]`, ids[0])))
	b.until("the replayed badge", fmt.Sprintf(`(document.querySelector('#dlq tr[data-id=%q]') || {}).textContent?.includes("replayed")`, ids[0]))
	b.do("follow it", chromedp.Click(fmt.Sprintf(`#dlq tr[data-id=%q] a[href="#/invocations/%s"]:not(:has(code))`, ids[0], ids[0])))
	b.until("the replayed invocation to succeed", `(document.querySelector("#inv-status") || {}).textContent === "succeeded"`)
	if !eval[bool](b, `document.querySelector("pre.reply").textContent.includes("booked for Ada")`) {
		t.Errorf("the replayed invocation's result: %s", eval[string](b, `document.querySelector("main").textContent`))
	}
	b.do("open the second's record", chromedp.Navigate(base+"/console/#/invocations/"+ids[1]))
	b.until("its replay button", fmt.Sprintf(`!!document.querySelector('button[data-replay=%q]')`, ids[1]))
	b.do("replay it", chromedp.Click(fmt.Sprintf(`button[data-replay=%q]`, ids[1])))
	b.until("the second to succeed", `(document.querySelector("#inv-status") || {}).textContent === "succeeded"`)
	// flaky's page lists both among its recent invocations, succeeded.
	b.do("open flaky", chromedp.Navigate(base+"/console/#/fn/flaky"))
	b.until("flaky's recent invocations", fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll("#recent-table tbody tr")];
		const ok = (id) => rows.some(r => r.dataset.id === %q.replace("ID", id) && r.textContent.includes("succeeded"));
		return ok(%q) && ok(%q);
	})()`, "ID", ids[0], ids[1]))
	b.until("flaky's versions", `document.querySelector("#versions").textContent.includes("runs without a deploy")`)
	b.do("open the invocations again", chromedp.Navigate(base+"/console/#/invocations"))
	b.until("no dead letters left", `(document.querySelector("#dead-letters") || {}).textContent?.includes("No dead letters.")`)

	// The API reference renders /openapi.json.
	b.do("open the API reference", chromedp.Navigate(base+"/console/#/api"))
	b.until("the routes", `[...document.querySelectorAll("details.op summary")].some(s => s.textContent.includes("/fn/greet"))`)
	b.do("open greet's POST", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll("details.op summary")].find(s => s.textContent.startsWith("POST") && s.textContent.includes("/fn/greet")).click()`))
	b.until("its responses", `[...document.querySelectorAll("details.op[open] h4")].some(h => h.textContent === "Responses")`)
	b.do("scroll to it", chromedp.Evaluate[chromedp.Void](`document.querySelector("details.op[open]").scrollIntoView()`))
	b.screenshot("api", false)

	// A phone-sized screen: nothing overflows sideways.
	b.do("emulate a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	for _, page := range []struct{ hash, ready string }{
		{"#/", `!!document.querySelector('#functions a[href="#/fn/greet"]')`},
		{"#/fn/quote", `!!document.querySelector("#invoke")`},
		{"#/fn/greet", `!!document.querySelector("#invoke")`},
		{"#/api", `document.querySelectorAll("details.op").length > 3`},
		{"#/invocations", `!!document.querySelector("main form")`},
	} {
		b.do("open "+page.hash, chromedp.Navigate(base+"/console/"+page.hash))
		b.until(page.hash, page.ready)
		b.noOverflow("390x844 " + page.hash)
		if page.hash == "#/" {
			if !eval[bool](b, `document.querySelector('#functions a[href="#/fn/greet"]').getBoundingClientRect().width > 0`) {
				t.Error("the list's links are not visible on a phone")
			}
			b.screenshot("phone", true)
		}
	}

	// Signing out forgets the key: quote is no longer listed.
	b.do("sign out", chromedp.Navigate(base+"/console/#/"))
	b.until("the list", `!!document.querySelector("#sign-out")`)
	b.do("press sign out", chromedp.Click(`#sign-out`))
	b.until("the anonymous list", `!!document.querySelector('#functions a[href="#/fn/greet"]') && !document.querySelector('#functions a[href="#/fn/quote"]')`)
	if got := eval[string](b, `sessionStorage.getItem("switchyard.console.key") || ""`); got != "" {
		t.Errorf("the key stayed in sessionStorage after signing out")
	}
}

// TestConsoleEscapes shows that what a function's author wrote reaches the
// page as text: markup in a description never becomes elements or runs.
func TestConsoleEscapes(t *testing.T) {
	chromium(t)
	base, _, _ := platform(t, true)
	b := newBrowser(t, base)
	b.do("open the console", chromedp.Navigate(base+"/console/"))
	b.until("the functions", `!!document.querySelector('#functions a[href="#/fn/markup"]')`)
	if eval[bool](b, `!!document.querySelector("#functions img, #functions b") || !!window.pwned`) {
		t.Error("a description's markup became elements")
	}
	if !eval[bool](b, fmt.Sprintf(`document.querySelector("#functions").textContent.includes(%q)`, markupText)) {
		t.Error("a description's markup is not shown as text")
	}
	b.do("open markup", chromedp.Click(`#functions a[href="#/fn/markup"]`))
	b.until("its page", `!!document.querySelector("#invoke")`)
	if eval[bool](b, `!!document.querySelector("main img, main b") || !!window.pwned`) {
		t.Error("a description's markup became elements on the function's page")
	}
	// Anonymous: the function that needs a key is not listed.
	b.do("back to the list", chromedp.Navigate(base+"/console/#/"))
	b.until("the anonymous list", `!!document.querySelector('#functions a[href="#/fn/greet"]') && !document.querySelector('#functions a[href="#/fn/quote"]')`)
}
