// The gateway's HTTP API as the console uses it: the routes it already
// serves, with the signed-in key as a bearer token. Nothing here invents
// a route; what the API cannot tell is shown as not available.

const KEY = "switchyard.console.key";
const QUEUED = "switchyard.console.queued";

// The API lives one folder above the console (/console/ → /), so a
// gateway served below a path prefix works too.
export const apiRoot = new URL("../", document.baseURI);

export function apiURL(path) {
  return new URL(path.replace(/^\//, ""), apiRoot).toString();
}

export function getKey() {
  try {
    return sessionStorage.getItem(KEY) || "";
  } catch {
    return "";
  }
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(QUEUED);
}

// keyFromFragment takes a key handed over once in the address
// (/console/#key=yk_…, the link `yard up` prints), keeps it in this tab's
// sessionStorage and removes it from the address bar and the history, so
// it is neither bookmarked nor shown over a shoulder.
export function keyFromFragment() {
  const h = location.hash;
  if (!h.startsWith("#key=") && !h.includes("&key=")) return false;
  const params = new URLSearchParams(h.slice(1));
  const key = (params.get("key") || "").trim();
  params.delete("key");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : "#/"));
  if (key) setKey(key);
  return !!key;
}

// keyLabel shows which key is in use without showing its secret: the
// id part of yk_<id>_<secret>.
export function keyLabel(key) {
  const m = /^yk_([a-z0-9]{12})_/.exec(key);
  if (m) return "key " + m[1];
  return key ? "a bearer token" : "";
}

// The ids of invocations queued from this tab: the API has no route that
// lists invocations, so this is the only list the console can show.
export function queued() {
  try {
    const v = JSON.parse(sessionStorage.getItem(QUEUED) || "[]");
    return Array.isArray(v) ? v.filter((x) => x && typeof x.id === "string") : [];
  } catch {
    return [];
  }
}

export function remember(id, fn) {
  const list = queued().filter((x) => x.id !== id);
  list.unshift({ id, fn, at: new Date().toISOString() });
  sessionStorage.setItem(QUEUED, JSON.stringify(list.slice(0, 20)));
}

// ApiError is a failed request: an HTTP answer (with its problem document,
// when the gateway sent one) or no answer at all (status 0).
export class ApiError extends Error {
  constructor(status, problem, message, headers) {
    super(message);
    this.status = status;
    this.problem = problem;
    this.headers = headers;
  }
}

// request sends one request and returns {status, headers, body, ms};
// answers of 400 and above throw ApiError. The timeout bounds every
// request, so a page never waits forever; key overrides the signed-in
// one (the sign-in form checks a key before keeping it).
export async function request(method, path, { body, timeoutMs = 15000, signal, key = getKey() } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DOMException("timed out", "TimeoutError")), timeoutMs);
  const stop = () => ctl.abort(signal.reason);
  if (signal) signal.addEventListener("abort", stop, { once: true });
  const started = performance.now();
  let resp;
  try {
    resp = await fetch(apiURL(path), {
      method,
      headers,
      body,
      signal: ctl.signal,
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
    });
  } catch (e) {
    const why = ctl.signal.aborted && !(signal && signal.aborted)
      ? "no answer within " + Math.round(timeoutMs / 1000) + " s"
      : "the gateway could not be reached (" + (e && e.message ? e.message : String(e)) + ")";
    throw new ApiError(0, null, why, null);
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", stop);
  }
  const text = await resp.text();
  const ms = Math.round(performance.now() - started);
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = undefined;
  }
  if (resp.status >= 400) {
    const problem = parsed && typeof parsed === "object" ? parsed : null;
    const msg = problem && (problem.detail || problem.title) ? String(problem.detail || problem.title) : "HTTP " + resp.status;
    const err = new ApiError(resp.status, problem, msg, resp.headers);
    err.ms = ms;
    throw err;
  }
  return { status: resp.status, headers: resp.headers, body: parsed, text, ms };
}

export const listFunctions = (opts) => request("GET", "/fn", opts);
export const getFunction = (name, opts) => request("GET", "/fn/" + encodeURIComponent(name), opts);
export const getInvocation = (id, opts) => request("GET", "/invocations/" + encodeURIComponent(id), opts);
export const getOpenAPI = (opts) => request("GET", "/openapi.json", opts);

// invoke posts body (JSON text) to the function, queued when async.
export function invoke(name, body, { async = false, timeoutMs } = {}) {
  const path = "/fn/" + encodeURIComponent(name) + (async ? "?async=1" : "");
  return request("POST", path, { body, timeoutMs });
}

// The operator routes (/ops/…): operator keys only, 401 or 403 for
// anyone else.
const fnPath = (name) => "/ops/functions/" + encodeURIComponent(name);
export const opsFunctions = (opts) => request("GET", "/ops/functions", opts);
export const opsInstances = (name, opts) => request("GET", fnPath(name) + "/instances", opts);
export const opsLogs = (name, after, opts) => request("GET", fnPath(name) + "/logs" + (after ? "?after=" + after : ""), opts);
export const opsInvocations = (name, opts) => request("GET", fnPath(name) + "/invocations", opts);
export const opsVersions = (name, opts) => request("GET", fnPath(name) + "/versions", opts);
export const opsDeadLetters = (fn, opts) => request("GET", "/ops/dlq" + (fn ? "?function=" + encodeURIComponent(fn) : ""), opts);
export const replay = (id, seq, opts) =>
  request("POST", "/ops/dlq/" + encodeURIComponent(id) + "/replay" + (seq ? "?seq=" + encodeURIComponent(seq) : ""), opts);

// operatorKey reports whether the signed-in key reaches the operator
// routes, asking the gateway once per key.
let operatorFor = null;
let operatorAnswer = false;
export async function isOperator(signal) {
  const key = getKey();
  if (!key) return false;
  if (operatorFor === key) return operatorAnswer;
  try {
    await request("GET", "/ops/functions", { signal });
    operatorAnswer = true;
  } catch (e) {
    if (!(e instanceof ApiError) || (e.status !== 401 && e.status !== 403)) throw e;
    operatorAnswer = false;
  }
  operatorFor = key;
  return operatorAnswer;
}
