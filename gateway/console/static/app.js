// The console's pages, routed by the address's fragment: #/ (functions),
// #/fn/<name>, #/invocations, #/invocations/<id>, #/api and #/sign-in.
// Each page fetches what it shows from the gateway's API when it opens.

import * as api from "./api.js";
import { h, append, clear, route, pretty, when, unavailable, uid } from "./dom.js";
import * as schema from "./schema.js";

const main = document.getElementById("main");
const who = document.getElementById("who");

// Each page gets a signal that aborts when the user leaves it, so its
// requests and polling stop with it.
let leaving = new AbortController();

function start() {
  api.keyFromFragment();
  document.getElementById("skip").addEventListener("click", (e) => {
    e.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", () => show(true));
  show(false);
}

async function show(navigated) {
  const hash = location.hash;
  // Fragments that are not routes (a key handed over, an in-page anchor)
  // are not navigation.
  if (api.keyFromFragment()) return show(navigated);
  if (hash !== "" && hash !== "#" && !hash.startsWith("#/")) return;
  leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  renderWho();
  const parts = hash.replace(/^#\/?/, "").split("/").filter((p) => p !== "").map(decode);
  let page;
  if (parts.length === 0) page = ["functions", () => functionsPage(signal)];
  else if (parts[0] === "fn" && parts.length === 2) page = ["functions", () => functionPage(parts[1], signal)];
  else if (parts[0] === "invocations" && parts.length === 1) page = ["invocations", () => invocationsPage(signal)];
  else if (parts[0] === "invocations" && parts.length === 2) page = ["invocations", () => invocationPage(parts[1], signal)];
  else if (parts[0] === "api" && parts.length === 1) page = ["api", () => apiPage(signal)];
  else if (parts[0] === "sign-in" && parts.length === 1) page = ["", () => signInPage()];
  else page = ["", () => notFoundPage()];
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === page[0]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clear(main);
  main.setAttribute("aria-busy", "true");
  try {
    await page[1]();
  } catch (e) {
    if (!signal.aborted) append(main, [problemBox(e)]);
  } finally {
    if (!signal.aborted) main.removeAttribute("aria-busy");
  }
  // After navigating, move focus to the new page's heading, so keyboard
  // and screen reader users start at its top rather than on a stale link.
  if (navigated && !signal.aborted) {
    const h1 = main.querySelector("h1");
    if (h1) {
      h1.setAttribute("tabindex", "-1");
      h1.focus({ preventScroll: false });
    }
  }
}

function decode(p) {
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

function title(t) {
  document.title = t ? t + " · Switchyard console" : "Switchyard console";
}

function renderWho() {
  const key = api.getKey();
  clear(who);
  if (key) {
    append(who, [
      h("span", { class: "whoami" }, "Signed in with ", h("strong", { text: api.keyLabel(key) })),
      h("button", { type: "button", class: "secondary small", id: "sign-out", text: "Sign out", onclick: () => {
        api.clearKey();
        if (location.hash === "#/") show(true);
        else location.hash = "#/";
      } }),
    ]);
  } else {
    append(who, [h("span", { class: "whoami", text: "Anonymous" }), h("a", { class: "button small", href: "#/sign-in", text: "Sign in" })]);
  }
}

// ---------------------------------------------------------------------
// Functions

async function functionsPage(signal) {
  title("Functions");
  const key = api.getKey();
  append(main, [
    h("h1", { text: "Functions" }),
    h("p", { class: "lede", text: key
      ? "The public functions, and those your key is granted."
      : "The public functions. Sign in with an API key to see the functions it is granted." }),
  ]);
  const r = await api.listFunctions({ signal });
  const fns = Array.isArray(r.body && r.body.functions) ? r.body.functions : [];
  // Operator keys also see how each function runs.
  const running = await opsFunctionsByName(signal);
  if (fns.length === 0) {
    append(main, [h("p", { class: "notice", text: key ? "Your key is granted no function that is deployed." : "No public function is deployed." })]);
  } else {
    const filterId = uid("filter");
    const filter = h("input", { type: "search", id: filterId, autocomplete: "off", spellcheck: "false" });
    const count = h("p", { class: "count", "aria-live": "polite", text: fns.length + " function" + (fns.length === 1 ? "" : "s") });
    const rows = fns.map((f) => {
      const row = h("tr", null,
        h("th", { scope: "row", "data-label": "Name" }, h("a", { href: route("fn", f.name), text: f.name })),
        h("td", { "data-label": "Version" }, versionText(f)),
        h("td", { "data-label": "Access" }, accessBadge(f.access)),
        running ? runningCells(running.get(f.name)) : null,
        h("td", { "data-label": "Description", class: "wrap", text: f.description || "—" }));
      row.dataset.search = (f.name + " " + (f.description || "")).toLowerCase();
      return row;
    });
    filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      let n = 0;
      for (const row of rows) {
        row.hidden = q !== "" && !row.dataset.search.includes(q);
        if (!row.hidden) n++;
      }
      count.textContent = n + " of " + fns.length + " function" + (fns.length === 1 ? "" : "s");
    });
    append(main, [
      h("div", { class: "toolbar" },
        h("label", { for: filterId, text: "Filter" }), filter, count),
      h("div", { class: "table-wrap" },
        h("table", { class: "list", id: "functions" },
          h("caption", { class: "visually-hidden", text: "Functions you may call" }),
          h("thead", null, h("tr", null,
            h("th", { scope: "col", text: "Name" }),
            h("th", { scope: "col", text: "Version" }),
            h("th", { scope: "col", text: "Access" }),
            running ? ["Instances", "State", "Next run"].map((t) => h("th", { scope: "col", text: t })) : null,
            h("th", { scope: "col", text: "Description" }))),
          h("tbody", null, rows))),
    ]);
  }
  if (!running) {
    append(main, [opsNote()]);
  } else {
    append(main, [h("p", { class: "muted" }, "Each function's page shows its instances with live request rates, its logs and its dead letters; ",
      h("a", { href: "#/invocations", text: "Invocations" }), " lists every dead letter.")]);
  }
  append(main, [unavailable("Not available yet", [
    "the async backlog per function (yard ls shows instances; nats stream info YARD_ASYNC the backlog)",
    "latency percentiles (the gateway's metrics have them: yard_gateway_request_duration_seconds)",
  ])]);
}

// opsFunctionsByName returns GET /ops/functions as a Map by name, or
// null when the key is not an operator's.
async function opsFunctionsByName(signal) {
  if (!api.getKey()) return null;
  try {
    const r = await api.opsFunctions({ signal });
    const list = Array.isArray(r.body && r.body.functions) ? r.body.functions : [];
    return new Map(list.map((f) => [f.name, f]));
  } catch (e) {
    if (e instanceof api.ApiError && (e.status === 401 || e.status === 403)) return null;
    throw e;
  }
}

function runningCells(o) {
  if (!o) return [h("td", { "data-label": "Instances", text: "—" }), h("td", { "data-label": "State", text: "—" }), h("td", { "data-label": "Next run", text: "—" })];
  const state = String(o.state || "");
  return [
    h("td", { "data-label": "Instances", class: "num", text: String(o.instances || 0) }),
    h("td", { "data-label": "State" }, h("span", { class: "badge state-" + state.replace(/[^a-z]/g, ""), text: state })),
    h("td", { "data-label": "Next run" }, o.next_run ? when(o.next_run) : "—"),
  ];
}

function opsNote() {
  return h("p", { class: "notice", id: "ops-note" },
    "Instances, live logs, request rates and dead letters with replay are shown to operator keys: ",
    h("code", { text: "yard keys create NAME --operator" }), ", or the console link ", h("code", { text: "yard up" }), " prints.");
}

function versionText(f) {
  if (f.version) return h("span", { text: "v" + f.version });
  return h("span", { class: "muted", title: "registered by a running instance, not deployed", text: "not deployed" });
}

function accessBadge(access) {
  const a = access || "authenticated";
  const help = {
    public: "anyone may call it, with or without a key",
    authenticated: "callers whose key or token is granted it",
    internal: "only other functions",
  }[a] || "";
  return h("span", { class: "badge access-" + a.replace(/[^a-z]/g, ""), title: help, text: a });
}

// ---------------------------------------------------------------------
// A function

async function functionPage(name, signal) {
  title(name);
  const r = await api.getFunction(name, { signal });
  const f = r.body || {};
  append(main, [
    h("p", { class: "crumbs" }, h("a", { href: "#/", text: "← Functions" })),
    h("h1", null, h("span", { text: f.name || name }), " ", accessBadge(f.access), " ", h("span", { class: "badge" }, versionText(f))),
    f.description ? h("p", { class: "lede", text: f.description }) : null,
    facts(f),
  ]);

  const root = f.input_schema;
  const built = schema.form(root || {}, root || {});
  const mode = uid("mode");
  const syncId = uid("sync");
  const asyncId = uid("async");
  const jsonArea = h("textarea", { id: uid("body"), class: "json", rows: "8", spellcheck: "false", "aria-label": "Input as JSON", hidden: true });
  const jsonToggle = h("button", { type: "button", class: "secondary", "aria-pressed": "false", "aria-controls": jsonArea.id, text: "Edit as JSON" });
  const notice = h("p", { class: "notice", hidden: true, role: "status" });
  const invokeBtn = h("button", { type: "submit", id: "invoke", class: "primary", text: "Invoke" });
  const result = h("div", { id: "result", class: "result", "aria-live": "polite" });

  jsonToggle.addEventListener("click", () => {
    notice.hidden = true;
    if (jsonArea.hidden) {
      const r = built.read();
      jsonArea.value = pretty(r.value === undefined ? {} : r.value);
      jsonArea.hidden = false;
      built.el.hidden = true;
      jsonToggle.setAttribute("aria-pressed", "true");
      jsonToggle.textContent = "Use the form";
      jsonArea.focus();
      return;
    }
    let v;
    try {
      v = JSON.parse(jsonArea.value);
    } catch (e) {
      notice.textContent = "The JSON does not parse (" + e.message + "); fix it or invoke as it is.";
      notice.hidden = false;
      return;
    }
    built.write(v);
    const back = built.read().value;
    if (schema.canonical(back) !== schema.canonical(v)) {
      notice.textContent = "Some of the JSON has no place in the form and was left out.";
      notice.hidden = false;
    }
    jsonArea.hidden = true;
    built.el.hidden = false;
    jsonToggle.setAttribute("aria-pressed", "false");
    jsonToggle.textContent = "Edit as JSON";
  });

  const formEl = h("form", { class: "invoke", novalidate: true, "aria-labelledby": "invoke-title" },
    built.el,
    jsonArea,
    notice,
    h("fieldset", { class: "mode" },
      h("legend", { text: "Run" }),
      h("div", { class: "field inline" },
        h("input", { type: "radio", name: mode, id: syncId, value: "sync", checked: true }),
        h("label", { for: syncId, text: "and wait for the reply" })),
      h("div", { class: "field inline" },
        h("input", { type: "radio", name: mode, id: asyncId, value: "async" }),
        h("label", { for: asyncId, text: "queued (async), then follow the invocation" }))),
    h("div", { class: "actions" }, invokeBtn, jsonToggle));

  formEl.addEventListener("submit", async (e) => {
    e.preventDefault();
    const async = document.getElementById(asyncId).checked;
    built.clearErrors();
    clear(result);
    let body;
    if (!jsonArea.hidden) {
      body = jsonArea.value;
    } else {
      const r = built.read();
      if (r.errors.length) {
        append(result, [errorSummary("Fix these before invoking:", built.markErrors(r.errors), built)]);
        focusSummary(result);
        return;
      }
      body = r.value === undefined ? "" : JSON.stringify(r.value);
    }
    invokeBtn.disabled = true;
    invokeBtn.textContent = async ? "Queueing…" : "Invoking…";
    append(result, [h("p", { class: "muted", text: async ? "Queueing…" : "Waiting for " + name + "…" })]);
    try {
      const timeoutMs = (parseDuration(f.timeout) || 30000) + 10000;
      const resp = await api.invoke(name, body, { async, timeoutMs });
      if (signal.aborted) return;
      clear(result);
      if (resp.status === 202 && resp.body && resp.body.id) {
        api.remember(resp.body.id, name);
        append(result, [
          h("h3", { text: "Queued" }),
          h("p", null, "Invocation ", h("code", { text: resp.body.id }), " is ", h("strong", { text: resp.body.status || "queued" }), ". "),
          h("p", null, h("a", { class: "button", href: route("invocations", resp.body.id), id: "follow", text: "Follow the invocation" })),
          meta(resp),
        ]);
      } else {
        append(result, [
          h("h3", { text: "Reply" }),
          meta(resp),
          h("pre", { class: "reply", tabindex: "0" }, h("code", { text: resp.body === undefined ? resp.text : pretty(resp.body) })),
        ]);
      }
    } catch (err) {
      if (signal.aborted) return;
      clear(result);
      const placed = err.problem && Array.isArray(err.problem.errors) ? built.markErrors(err.problem.errors) : [];
      append(result, [problemBox(err, placed, built)]);
      if (placed.length) focusSummary(result);
    } finally {
      invokeBtn.disabled = false;
      invokeBtn.textContent = "Invoke";
    }
  });

  append(main, [
    h("section", { class: "card", "aria-labelledby": "invoke-title" },
      h("h2", { id: "invoke-title", text: "Invoke" }),
      root ? null : h("p", { class: "notice", text: "This function has no input schema: write its input as JSON." }),
      formEl,
      result),
    h("section", { class: "card", "aria-labelledby": "schemas-title" },
      h("h2", { id: "schemas-title", text: "Schemas" }),
      h("h3", { text: "Input" }),
      root ? schema.view(root, root) : h("p", { class: "muted", text: "none" }),
      root ? schema.raw(root, "Input schema as JSON") : null,
      h("h3", { text: "Output" }),
      f.output_schema ? schema.view(f.output_schema, f.output_schema) : h("p", { class: "muted", text: "none" }),
      f.output_schema ? schema.raw(f.output_schema, "Output schema as JSON") : null),
  ]);
  if (await api.isOperator(signal)) {
    if (signal.aborted) return;
    append(main, [instancesCard(name, signal), recentCard(name, signal), logsCard(name, signal),
      deadLettersCard(name, signal), versionsCard(name, signal)]);
  } else {
    append(main, [opsNote()]);
  }
  append(main, [unavailable("Not available yet", [
    "rolling back to an earlier version (yard rollback " + name + " --to N does it)",
  ])]);
}

// facts lists what the spec says about running the function.
function facts(f) {
  const rows = [];
  const add = (k, v) => {
    if (v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0)) return;
    rows.push(h("div", null, h("dt", { text: k }), h("dd", null, v)));
  };
  const list = (xs) => xs.map((x, i) => [i ? ", " : "", h("code", { text: typeof x === "string" ? x : pretty(x) })]);
  add("Timeout", f.timeout);
  add("Concurrency", f.concurrency ? String(f.concurrency) + " at a time per instance" : null);
  if (f.max_attempts) {
    add("Async retries", f.max_attempts + " attempts" + (Array.isArray(f.backoff) && f.backoff.length ? ", waiting " + f.backoff.join(", ") : ""));
  }
  if (f.min_instances || f.max_instances || f.idle_timeout) {
    const parts = [];
    if (f.min_instances) parts.push("at least " + f.min_instances);
    if (f.max_instances) parts.push("at most " + f.max_instances);
    if (f.idle_timeout) parts.push("idle after " + f.idle_timeout);
    add("Instances", parts.join(", ") + " (as declared)");
  }
  add("Schedules", Array.isArray(f.schedules) ? list(f.schedules.map((s) => s.cron)) : null);
  add("Calls", Array.isArray(f.calls) ? list(f.calls) : null);
  add("Publishes", Array.isArray(f.publishes) ? list(f.publishes) : null);
  add("Handles events", Array.isArray(f.events) ? list(f.events) : null);
  add("Streams", Array.isArray(f.streams) ? list(f.streams.map((s) => s.name)) : null);
  add("Buckets", Array.isArray(f.buckets) ? list(f.buckets) : null);
  add("Environment", Array.isArray(f.env_names) ? list(f.env_names) : null);
  add("Deployed", when(f.deployed_at));
  add("Updated", when(f.updated_at));
  return rows.length ? h("dl", { class: "facts" }, rows) : null;
}

// parseDuration reads Go's duration text ("30s", "1m30s", "250ms").
function parseDuration(s) {
  if (typeof s !== "string") return 0;
  const unit = { h: 3600e3, m: 60e3, s: 1e3, ms: 1, us: 1e-3, "µs": 1e-3, ns: 1e-6 };
  let total = 0;
  for (const [, n, u] of s.matchAll(/([0-9.]+)(h|ms|m|s|us|µs|ns)/g)) total += parseFloat(n) * unit[u];
  return total;
}

function meta(resp) {
  const id = resp.headers && resp.headers.get("Yard-Request-Id");
  return h("p", { class: "meta" },
    h("span", { class: "badge ok", text: String(resp.status) }),
    " in " + resp.ms + " ms",
    id ? [" · request id ", h("code", { text: id })] : null);
}

// problemBox shows a failed request: its code, reason and detail, and
// the field errors (placed: those the form shows inline too).
function problemBox(err, placed, built) {
  const p = err && err.problem;
  const box = h("div", { class: "problem", role: "alert" });
  if (!(err instanceof api.ApiError)) {
    append(box, [h("h3", { text: "Something went wrong" }), h("p", { text: String(err && err.message ? err.message : err) })]);
    return box;
  }
  append(box, [
    h("h3", null,
      err.status ? h("span", { class: "badge bad", text: String(err.status) }) : null, " ",
      p && p.code ? h("code", { text: p.code }) : h("span", { text: err.status ? "Error" : "No answer" }),
      p && p.reason ? [" · ", h("code", { text: p.reason })] : null),
    h("p", { text: err.message }),
  ]);
  if (placed && placed.length) append(box, [errorSummary("", placed, built)]);
  else if (p && Array.isArray(p.errors) && p.errors.length) {
    append(box, [h("ul", { class: "errors" }, p.errors.map((e) => h("li", null, h("code", { text: e.pointer || "/" }), " ", e.message || "")))]);
  }
  const retry = err.headers && err.headers.get("Retry-After");
  if (retry) append(box, [h("p", { text: "Try again in " + retry + " s." })]);
  if (err.status === 401) {
    append(box, [h("p", null, api.getKey() ? "The gateway refused your key. " : "This needs an API key. ",
      h("a", { href: "#/sign-in", text: "Sign in" }))]);
  }
  if (p && p.request_id) append(box, [h("p", { class: "meta" }, "request id ", h("code", { text: p.request_id }))]);
  return box;
}

// errorSummary lists field errors; those next to a field get a button
// that moves focus to it.
function errorSummary(heading, placed, built) {
  return h("div", { class: "summary", tabindex: "-1" },
    heading ? h("p", { text: heading }) : null,
    h("ul", { class: "errors" }, placed.map(({ error, field }) => h("li", null,
      field && !built.el.hidden
        ? h("button", { type: "button", class: "linkish", onclick: () => field.focus(), text: field.pointer || "/" })
        : h("code", { text: error.pointer || "/" }),
      " ", error.message || ""))));
}

function focusSummary(result) {
  const s = result.querySelector(".summary");
  if (s) s.focus();
}

// ---------------------------------------------------------------------
// Operator views: what /ops serves to operator keys, read again every
// POLL_MS while the page is open.

const POLL_MS = 2000;

// instancesCard lists a function's instances with their counters; the
// rates are the change between two reads.
function instancesCard(name, signal) {
  const summary = h("p", { class: "meta", id: "rates", text: "Reading…" });
  const tbody = h("tbody");
  const cols = ["Instance", "Version", "Started", "In flight", "Requests", "Failed", "Requests/s", "Mean ms"];
  const card = h("section", { class: "card", "aria-labelledby": "instances-title" },
    h("h2", { id: "instances-title", text: "Instances" }),
    summary,
    h("div", { class: "table-wrap" }, h("table", { class: "list", id: "instances" },
      h("caption", { class: "visually-hidden", text: "Instances of " + name }),
      h("thead", null, h("tr", null, cols.map((t) => h("th", { scope: "col", text: t })))),
      tbody)));
  let prev = new Map();
  let prevAt = 0;
  (async () => {
    while (!signal.aborted) {
      try {
        const r = await api.opsInstances(name, { signal });
        if (signal.aborted) return;
        const at = Date.parse(r.body && r.body.at) || Date.now();
        const list = Array.isArray(r.body && r.body.instances) ? r.body.instances : [];
        let rate = 0;
        let failRate = 0;
        const rows = list.map((i) => {
          const p = prev.get(i.id);
          let rps = null;
          if (p && at > prevAt) {
            const dt = (at - prevAt) / 1000;
            rps = Math.max(0, ((i.requests || 0) - (p.requests || 0)) / dt);
            rate += rps;
            failRate += Math.max(0, ((i.failed || 0) - (p.failed || 0)) / dt);
          }
          const mean = i.requests ? i.processing_time_ns / i.requests / 1e6 : null;
          return h("tr", null,
            h("th", { scope: "row", "data-label": "Instance" }, h("code", { text: i.id })),
            h("td", { "data-label": "Version", text: i.version || "—" }),
            h("td", { "data-label": "Started" }, when(i.started)),
            h("td", { "data-label": "In flight", text: String(i.in_flight || 0) + (i.concurrency ? " of " + i.concurrency : "") }),
            h("td", { "data-label": "Requests", class: "num", text: String(i.requests || 0) }),
            h("td", { "data-label": "Failed", class: "num", text: String(i.failed || 0) }),
            h("td", { "data-label": "Requests/s", class: "num rate", text: rps === null ? "…" : rps.toFixed(1) }),
            h("td", { "data-label": "Mean ms", class: "num", text: mean === null ? "—" : mean.toFixed(2) }));
        });
        clear(tbody);
        append(tbody, rows.length ? rows : [h("tr", null,
          h("td", { colspan: String(cols.length), class: "muted", text: "No instance answers: the function is scaled to zero or down." }))]);
        const n = list.length + " instance" + (list.length === 1 ? "" : "s");
        const rates = prevAt ? rate.toFixed(1) + " requests/s, " + failRate.toFixed(1) + " failed/s" : "rates from the next read";
        summary.textContent = n + " · " + rates + " · read at " + new Date(at).toLocaleTimeString();
        summary.dataset.rate = prevAt ? String(rate) : "";
        prev = new Map(list.map((i) => [i.id, i]));
        prevAt = at;
      } catch (e) {
        if (signal.aborted) return;
        summary.textContent = "Could not read the instances: " + e.message;
      }
      await sleep(POLL_MS, signal);
    }
  })();
  return card;
}

// logsCard follows a function's log lines, keeping the newest MAX_LINES.
const MAX_LINES = 500;
const LOG_PAGE = 100; // the gateway's default limit

function logsCard(name, signal) {
  const pre = h("pre", { class: "logs", id: "logs", tabindex: "0", "aria-label": "Log lines of " + name });
  const status = h("p", { class: "meta", text: "Reading…" });
  const pause = h("button", { type: "button", class: "secondary small", "aria-pressed": "false", "aria-controls": "logs", text: "Pause" });
  let paused = false;
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
  });
  const card = h("section", { class: "card", "aria-labelledby": "logs-title" },
    h("div", { class: "card-head" }, h("h2", { id: "logs-title", text: "Live logs" }), pause),
    status,
    pre);
  let after = 0;
  (async () => {
    while (!signal.aborted) {
      if (!paused) {
        try {
          const r = await api.opsLogs(name, after, { signal });
          if (signal.aborted) return;
          const lines = Array.isArray(r.body && r.body.lines) ? r.body.lines : [];
          const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
          append(pre, lines.map((l) => h("span", { class: "line" }, h("span", { class: "inst", text: l.instance }), " ", l.line, "\n")));
          while (pre.childNodes.length > MAX_LINES) pre.firstChild.remove();
          if (r.body && typeof r.body.next === "number" && r.body.next > after) after = r.body.next;
          if (atBottom) pre.scrollTop = pre.scrollHeight;
          // A full answer means more lines wait: read on at once.
          if (lines.length >= LOG_PAGE && !signal.aborted) continue;
          status.textContent = pre.childNodes.length
            ? "New lines appear every " + POLL_MS / 1000 + " s; the newest " + MAX_LINES + " stay here."
            : "No log lines in the last 24 hours.";
        } catch (e) {
          if (signal.aborted) return;
          status.textContent = "Could not read the logs: " + e.message;
        }
      }
      await sleep(POLL_MS, signal);
    }
  })();
  return card;
}

// listInto reads a list (the field key of the answer of get) for a card
// whose content is body: the list, or null when the page was left or the
// request failed (body then shows the problem). body is cleared.
async function listInto(body, signal, get, key) {
  let r;
  try {
    r = await get();
  } catch (e) {
    if (signal.aborted) return null;
    clear(body);
    append(body, [problemBox(e)]);
    return null;
  }
  if (signal.aborted) return null;
  clear(body);
  return Array.isArray(r.body && r.body[key]) ? r.body[key] : [];
}

// recentCard lists a function's recently updated invocation records.
function recentCard(name, signal) {
  const body = h("div", { id: "recent" }, h("p", { class: "muted", text: "Reading…" }));
  const refresh = h("button", { type: "button", class: "secondary small", text: "Refresh" });
  const load = async () => {
    const list = await listInto(body, signal, () => api.opsInvocations(name, { signal }), "invocations");
    if (!list) return;
    if (!list.length) {
      append(body, [h("p", { class: "muted", text: "No async invocation, event or schedule tick of " + name + " in the latest records." })]);
      return;
    }
    append(body, [h("div", { class: "table-wrap" }, h("table", { class: "list", id: "recent-table" },
      h("caption", { class: "visually-hidden", text: "Recent invocations of " + name }),
      h("thead", null, h("tr", null, ["Invocation", "Status", "Attempts", "Queued", "Finished"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", null, list.map((x) => h("tr", { "data-id": x.id },
        h("th", { scope: "row", "data-label": "Invocation" }, h("a", { href: route("invocations", x.id) }, h("code", { text: x.id }))),
        h("td", { "data-label": "Status" }, h("span", { class: "badge status-" + String(x.status || "").replace(/[^a-z]/g, ""), text: x.status || "?" })),
        h("td", { "data-label": "Attempts", class: "num", text: String(x.attempts || 0) + (x.max_attempts ? " of " + x.max_attempts : "") }),
        h("td", { "data-label": "Queued" }, when(x.created_at)),
        h("td", { "data-label": "Finished" }, x.finished_at ? when(x.finished_at) : "—"))))))]);
  };
  refresh.addEventListener("click", load);
  load();
  return h("section", { class: "card", "aria-labelledby": "recent-title" },
    h("div", { class: "card-head" }, h("h2", { id: "recent-title", text: "Recent invocations" }), refresh),
    h("p", { class: "muted", text: "Async invocations, events and schedule ticks, newest first (sync calls leave no record)." }),
    body);
}

// versionsCard lists a function's deployed versions.
function versionsCard(name, signal) {
  const body = h("div", { id: "versions" }, h("p", { class: "muted", text: "Reading…" }));
  (async () => {
    const list = await listInto(body, signal, () => api.opsVersions(name, { signal }), "versions");
    if (!list) return;
    if (!list.length) {
      append(body, [h("p", { class: "muted", text: name + " runs without a deploy (registered by its instance), so it has no versions." })]);
      return;
    }
    append(body, [h("div", { class: "table-wrap" }, h("table", { class: "list", id: "versions-table" },
      h("caption", { class: "visually-hidden", text: "Versions of " + name }),
      h("thead", null, h("tr", null, ["Version", "Deployed", "Schema", "Description"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", null, list.map((v) => h("tr", { "data-version": String(v.version) },
        h("th", { scope: "row", "data-label": "Version" }, "v" + v.version, v.current ? [" ", h("span", { class: "badge ok", text: "live" })] : null),
        h("td", { "data-label": "Deployed" }, when(v.deployed_at)),
        h("td", { "data-label": "Schema" }, h("code", { title: v.schema_hash || "", text: String(v.schema_hash || "").slice(0, 19) })),
        h("td", { "data-label": "Description", class: "wrap", text: v.description || "—" }))))))]);
  })();
  return h("section", { class: "card", "aria-labelledby": "versions-title" },
    h("h2", { id: "versions-title", text: "Versions" }), body);
}

// deadLettersCard lists the dead letters of fn (all when ""), each with
// a replay button.
function deadLettersCard(fn, signal) {
  const body = h("div", { id: "dead-letters" }, h("p", { class: "muted", text: "Reading…" }));
  const card = h("section", { class: "card", "aria-labelledby": "dlq-title" },
    h("h2", { id: "dlq-title", text: "Dead letters" }),
    h("p", { class: "muted", text: "Async invocations whose every attempt failed. Replay sends one back to the work queue with its attempts reset." }),
    body);
  (async () => {
    const list = await listInto(body, signal, () => api.opsDeadLetters(fn, { signal }), "dead_letters");
    if (!list) return;
    if (!list.length) {
      append(body, [h("p", { class: "notice", text: fn ? "No dead letters for " + fn + "." : "No dead letters." })]);
      return;
    }
    const cols = ["Invocation", fn ? null : "Function", "Dead since", "Attempts", "Last error", "Input", "Replay"].filter((c) => c !== null);
    const rows = list.map((d) => {
      const cell = h("td", { "data-label": "Replay" });
      append(cell, [replayButton(d.id, d.function, d.seq, signal, () => {
        clear(cell);
        append(cell, [h("span", { class: "badge ok", text: "replayed" }), " ", h("a", { href: route("invocations", d.id), text: "Follow" })]);
      })]);
      return h("tr", { "data-id": d.id },
        h("th", { scope: "row", "data-label": "Invocation" }, h("a", { href: route("invocations", d.id) }, h("code", { text: d.id }))),
        fn ? null : h("td", { "data-label": "Function" }, h("a", { href: route("fn", d.function), text: d.function })),
        h("td", { "data-label": "Dead since" }, when(d.dead_at)),
        h("td", { "data-label": "Attempts", class: "num", text: String(d.attempts || 0) }),
        h("td", { "data-label": "Last error", class: "wrap" }, d.error ? [h("code", { text: d.error.code || "" }), " ", d.error.message || ""] : "—"),
        h("td", { "data-label": "Input", class: "wrap" }, h("code", { text: truncate(JSON.stringify(d.payload), 160) })),
        cell);
    });
    append(body, [h("div", { class: "table-wrap" }, h("table", { class: "list", id: "dlq" },
      h("caption", { class: "visually-hidden", text: fn ? "Dead letters of " + fn : "Dead letters" }),
      h("thead", null, h("tr", null, cols.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", null, rows)))]);
  })();
  return card;
}

// replayButton replays dead letter id, then calls done.
// replayed holds when each invocation was replayed from this tab: its
// record says "dead" until an instance takes the work, which is then not
// final yet.
const replayed = new Map();

function replayButton(id, fn, seq, signal, done) {
  const btn = h("button", { type: "button", class: "secondary small", "data-replay": id, text: "Replay",
    "aria-label": "Replay invocation " + id });
  const err = h("span", { class: "problem-inline", role: "alert" });
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    btn.textContent = "Replaying…";
    err.textContent = "";
    try {
      await api.replay(id, seq, { signal });
      replayed.set(id, Date.now());
      api.remember(id, fn);
      done();
    } catch (e) {
      if (signal.aborted) return;
      btn.disabled = false;
      btn.textContent = "Replay";
      err.textContent = e.message;
    }
  });
  return h("span", null, btn, " ", err);
}

function truncate(s, n) {
  s = String(s === undefined ? "" : s);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

// ---------------------------------------------------------------------
// Invocations

async function invocationsPage(signal) {
  title("Invocations");
  const id = uid("inv");
  const input = h("input", { id, type: "text", required: true, spellcheck: "false", autocomplete: "off", pattern: "[A-Za-z0-9_\\-]{1,64}" });
  const form = h("form", { class: "inline-form", onsubmit: (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (v) location.hash = route("invocations", v);
  } }, h("label", { for: id, text: "Invocation id" }), input, h("button", { type: "submit", class: "primary", text: "Open" }));
  const mine = api.queued();
  append(main, [
    h("h1", { text: "Invocations" }),
    h("p", { class: "lede", text: "An async invocation's record is readable by whoever queued it (and by operator keys), for 24 hours. The API has no route that lists them, so open one by its id." }),
    form,
    h("h2", { text: "Queued from this tab" }),
    mine.length
      ? h("ul", { class: "plain" }, mine.map((x) => h("li", null,
        h("a", { href: route("invocations", x.id) }, h("code", { text: x.id })), " ", h("span", { class: "muted" }, x.fn ? x.fn + " · " : "", when(x.at)))))
      : h("p", { class: "muted", text: "None yet: invoke a function queued (async) and it is listed here." }),
  ]);
  if (await api.isOperator(signal)) {
    if (signal.aborted) return;
    append(main, [deadLettersCard("", signal)]);
  } else {
    append(main, [opsNote()]);
  }
  append(main, [unavailable("Not available yet", [
    "every invocation of a function, recent ones first",
    "the async backlog per function",
  ])]);
}

const FINAL = new Set(["succeeded", "dead"]);
// REPLAY_WAIT_MS is how long a replayed invocation's "dead" is taken as
// not final: the time for an instance to take the work.
const REPLAY_WAIT_MS = 60000;

async function invocationPage(id, signal) {
  title("Invocation " + id);
  const status = h("p", { class: "muted", role: "status" });
  const body = h("div");
  append(main, [
    h("p", { class: "crumbs" }, h("a", { href: "#/invocations", text: "← Invocations" })),
    h("h1", null, "Invocation ", h("code", { class: "id", text: id })),
    status,
    body,
  ]);
  const operator = await api.isOperator(signal).catch(() => false);
  // Poll until the record is final, a little slower as time goes by; the
  // page's signal stops it when the user leaves.
  let delay = 500;
  for (;;) {
    let rec;
    try {
      rec = (await api.getInvocation(id, { signal })).body || {};
    } catch (e) {
      if (signal.aborted) return;
      clear(body);
      if (e.status === 404) {
        append(body, [h("p", { class: "notice", text: "No such invocation for you: the id is unknown, it was queued with other credentials, or it is older than 24 hours." })]);
      } else {
        append(body, [problemBox(e)]);
      }
      status.textContent = "";
      return;
    }
    if (signal.aborted) return;
    clear(body);
    append(body, [record(rec, operator, signal)]);
    const waitingForReplay = rec.status === "dead" && Date.now() - (replayed.get(id) || 0) < REPLAY_WAIT_MS;
    if (FINAL.has(rec.status) && !waitingForReplay) {
      status.textContent = "Finished.";
      return;
    }
    status.textContent = "Updating while it runs…";
    await sleep(delay, signal);
    if (signal.aborted) return;
    delay = Math.min(delay * 1.5, 5000);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

function record(r, operator, signal) {
  const rows = [];
  const add = (k, v) => {
    if (v !== undefined && v !== null && v !== "") rows.push(h("div", null, h("dt", { text: k }), h("dd", null, v)));
  };
  add("Function", r.function ? h("a", { href: route("fn", r.function), text: r.function }) : null);
  add("Status", h("span", { class: "badge status-" + String(r.status || "").replace(/[^a-z]/g, ""), id: "inv-status", text: r.status || "?" }));
  add("Attempts", r.attempts !== undefined ? String(r.attempts) + (r.max_attempts ? " of " + r.max_attempts : "") : null);
  add("Queued", when(r.created_at));
  add("Started", when(r.started_at));
  add("Finished", when(r.finished_at));
  add("Next attempt", when(r.next_attempt_at));
  add("Request id", r.request_id ? h("code", { text: r.request_id }) : null);
  const out = [h("dl", { class: "facts" }, rows)];
  if (r.result !== undefined) {
    out.push(h("h2", { text: "Result" }), h("pre", { class: "reply", tabindex: "0" }, h("code", { text: pretty(r.result) })));
  }
  if (r.error) {
    out.push(h("h2", { text: r.status === "dead" ? "Last error" : "Error" }),
      h("div", { class: "problem" },
        h("p", null, h("code", { text: r.error.code || "" }), r.error.reason ? [" · ", h("code", { text: r.error.reason })] : null),
        h("p", { text: r.error.message || "" }),
        Array.isArray(r.error.errors) && r.error.errors.length
          ? h("ul", { class: "errors" }, r.error.errors.map((e) => h("li", null, h("code", { text: e.pointer || "/" }), " ", e.message || "")))
          : null));
  }
  if (r.status === "dead" && replayed.has(r.id) && Date.now() - replayed.get(r.id) < REPLAY_WAIT_MS) {
    out.push(h("p", { class: "notice", role: "status", text: "Replayed: back in the work queue, waiting for an instance to take it." }));
  } else if (r.status === "dead") {
    const kept = "Every attempt failed; the dead letter is kept" + (r.dlq_seq ? " (sequence " + r.dlq_seq + ")" : "") + ". ";
    out.push(operator
      ? h("div", { class: "actions" }, h("span", { text: kept }), replayButton(r.id, r.function, r.dlq_seq, signal, () => show(false)))
      : h("p", { class: "notice" }, kept + "An operator key replays it here; from a terminal, ",
        h("code", { text: "yard dlq replay " + (r.id || "") }), "."));
  }
  return h("div", null, out);
}

// ---------------------------------------------------------------------
// API reference

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async function apiPage(signal) {
  title("API reference");
  const r = await api.getOpenAPI({ signal });
  const doc = r.body || {};
  const info = doc.info || {};
  const schemas = (doc.components && doc.components.schemas) || {};
  const anchors = new Map(); // schema name → its <details>
  const openRef = (ref) => {
    const d = anchors.get(schema.refName(ref));
    if (!d) return;
    d.open = true;
    const s = d.querySelector("summary");
    s.scrollIntoView({ block: "start" });
    s.focus();
  };
  append(main, [
    h("h1", null, "API reference", info.version ? h("span", { class: "badge", text: "v" + info.version }) : null),
    h("p", { class: "muted" }, "The gateway's ", h("code", { text: "GET /openapi.json" }), " (OpenAPI " + (doc.openapi || "?") + "), as "
      + (api.getKey() ? "your key" : "an anonymous caller") + " sees it."),
    paragraphs(info.description),
  ]);
  if (Array.isArray(doc.servers) && doc.servers.length) {
    append(main, [h("h2", { text: "Servers" }), h("ul", { class: "plain" }, doc.servers.map((s) => h("li", null, h("code", { text: s.url || "" }), s.description ? " — " + s.description : "")))]);
  }
  const sec = (doc.components && doc.components.securitySchemes) || {};
  if (Object.keys(sec).length) {
    append(main, [h("h2", { text: "Authentication" }), h("dl", { class: "facts" }, Object.entries(sec).map(([k, s]) =>
      h("div", null, h("dt", null, h("code", { text: k })), h("dd", null,
        [s.type, s.scheme, s.bearerFormat, s.openIdConnectUrl].filter(Boolean).join(" · "),
        s.description ? h("br") : null, s.description || ""))))]);
  }

  // Routes, grouped by their first tag.
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const m of METHODS) {
      const op = item && item[m];
      if (!op) continue;
      const tag = (Array.isArray(op.tags) && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, method: m, op, item });
    }
  }
  const tagText = new Map((doc.tags || []).map((t) => [t.name, t.description]));
  append(main, [h("h2", { text: "Routes" })]);
  for (const [tag, ops] of groups) {
    append(main, [h("section", { class: "tag" },
      h("h3", null, h("code", { text: tag }), tagText.get(tag) ? h("span", { class: "muted", text: " — " + tagText.get(tag) }) : null),
      ops.map((o) => operation(doc, o, openRef)))]);
  }

  append(main, [h("h2", { text: "Schemas" })]);
  for (const [name, s] of Object.entries(schemas)) {
    const d = h("details", { class: "op" },
      h("summary", null, h("code", { text: name }), s.description ? h("span", { class: "muted", text: " — " + s.description }) : null));
    // Rendered when opened: a big registry makes many tables.
    d.addEventListener("toggle", () => {
      if (d.open && d.children.length === 1) {
        append(d, [schema.view(s, doc, { onRef: openRef }), schema.raw(s)]);
      }
    });
    anchors.set(name, d);
    append(main, [d]);
  }
  const rawDoc = h("details", { class: "raw" }, h("summary", { text: "The whole document as JSON" }));
  rawDoc.addEventListener("toggle", () => {
    if (rawDoc.open && rawDoc.children.length === 1) append(rawDoc, [h("pre", { tabindex: "0" }, h("code", { text: pretty(doc) }))]);
  });
  append(main, [h("h2", { text: "Raw" }), rawDoc]);
}

function paragraphs(text) {
  if (!text) return null;
  return String(text).split(/\n\s*\n/).map((p) => h("p", { text: p }));
}

// deref follows a $ref into the OpenAPI document (parameters, responses).
function deref(doc, o) {
  return schema.resolve(o, doc).s;
}

function operation(doc, { path, method, op, item }, openRef) {
  const d = h("details", { class: "op" },
    h("summary", null,
      h("span", { class: "method method-" + method, text: method.toUpperCase() }), " ",
      h("code", { class: "path", text: path }),
      op.summary ? h("span", { class: "muted", text: " — " + op.summary }) : null));
  d.addEventListener("toggle", () => {
    if (!d.open || d.children.length > 1) return;
    const params = [...(item.parameters || []), ...(op.parameters || [])].map((p) => deref(doc, p));
    const parts = [paragraphs(op.description)];
    if (op.operationId) parts.push(h("p", { class: "muted" }, "operationId ", h("code", { text: op.operationId })));
    if (params.length) {
      parts.push(h("h4", { text: "Parameters" }), h("div", { class: "table-wrap" }, h("table", { class: "schema" },
        h("thead", null, h("tr", null, ["Name", "In", "Description"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", null, params.map((p) => h("tr", null,
          h("th", { scope: "row", "data-label": "Name" }, h("code", { text: p.name || "" }), p.required ? h("span", { class: "req", text: "required" }) : null),
          h("td", { "data-label": "In", text: p.in || "" }),
          h("td", { "data-label": "Description", class: "wrap", text: p.description || "—" })))))));
    }
    if (op.requestBody) {
      const rb = deref(doc, op.requestBody);
      parts.push(h("h4", { text: "Request body" + (rb.required ? " (required)" : "") }), paragraphs(rb.description));
      for (const [type, media] of Object.entries(rb.content || {})) {
        parts.push(h("p", null, h("code", { text: type })), media.schema ? schema.view(media.schema, doc, { onRef: openRef }) : null);
      }
    }
    if (op.responses) {
      parts.push(h("h4", { text: "Responses" }), h("div", { class: "table-wrap" }, h("table", { class: "schema" },
        h("thead", null, h("tr", null, ["Status", "Description", "Body"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", null, Object.entries(op.responses).map(([code, resp]) => {
          const rr = deref(doc, resp);
          const bodies = Object.entries(rr.content || {}).map(([type, media]) => {
            const s = media.schema || {};
            return h("div", null, h("code", { text: type }), " ",
              s.$ref ? h("button", { type: "button", class: "linkish", onclick: () => openRef(s.$ref), text: schema.refName(s.$ref) }) : null);
          });
          return h("tr", null,
            h("th", { scope: "row", "data-label": "Status" }, h("code", { text: code })),
            h("td", { "data-label": "Description", class: "wrap", text: rr.description || "—" }),
            h("td", { "data-label": "Body" }, bodies.length ? bodies : "—"));
        })))));
    }
    const security = op.security || doc.security;
    if (Array.isArray(security)) {
      const names = security.map((s) => Object.keys(s).join(" + ") || "anonymous");
      parts.push(h("p", { class: "muted", text: "Credentials: " + names.join(" or ") }));
    }
    append(d, [h("div", { class: "op-body" }, parts)]);
  });
  return d;
}

// ---------------------------------------------------------------------
// Signing in

function signInPage() {
  title("Sign in");
  const id = uid("key");
  const input = h("input", { id, type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": id + "-help " + id + "-err" });
  const err = h("p", { class: "field-error", id: id + "-err", hidden: true, role: "alert" });
  const button = h("button", { type: "submit", class: "primary", text: "Sign in" });
  const form = h("form", { class: "card signin", novalidate: true },
    h("div", { class: "field" },
      h("label", { for: id, text: "API key" }),
      input,
      h("p", { class: "hint", id: id + "-help", text: "A key starts with yk_. It stays in this browser tab (sessionStorage) until you sign out or close the tab, and is sent only to this gateway, as Authorization: Bearer." }),
      err),
    h("div", { class: "actions" }, button, h("a", { href: "#/", text: "Continue without a key" })));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    err.hidden = true;
    if (!key) {
      err.textContent = "Paste a key first.";
      err.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      // Checked before it is kept: a key the gateway refuses is never stored.
      await api.listFunctions({ key });
      api.setKey(key);
      input.value = "";
      location.hash = "#/";
    } catch (ex) {
      err.textContent = ex.status === 401 ? "The gateway refused this key: " + ex.message : ex.message;
      err.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  append(main, [
    h("h1", { text: "Sign in" }),
    h("p", { class: "lede" }, "Public functions work without a key. For the others, sign in with an API key: ",
      h("code", { text: "yard keys create" }), " makes one, and ", h("code", { text: "yard up" }),
      " prints a console link that signs the local admin in."),
    form,
  ]);
}

function notFoundPage() {
  title("Not found");
  append(main, [h("h1", { text: "Not found" }), h("p", null, "The console has no such page. ", h("a", { href: "#/", text: "See the functions." }))]);
}

start();
