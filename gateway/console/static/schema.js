// JSON Schemas, shown readably and turned into forms. Only local
// references ("#/…") are followed, against the document the schema came
// from (a function's own schema, or the OpenAPI document); nothing is
// ever fetched.

import { h, pretty, uid } from "./dom.js";

// get follows a JSON pointer ("" or "/a/b") into doc.
export function get(doc, pointer) {
  if (pointer === "") return doc;
  let v = doc;
  for (const raw of pointer.slice(1).split("/")) {
    const k = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (v === null || typeof v !== "object" || !Object.prototype.hasOwnProperty.call(v, k)) return undefined;
    v = v[k];
  }
  return v;
}

// escapeToken makes a property name one JSON pointer token.
export function escapeToken(name) {
  return String(name).replace(/~/g, "~0").replace(/\//g, "~1");
}

// refName is the last token of a reference, to name it on the page.
export function refName(ref) {
  const t = ref.split("/").pop() || ref;
  return decodeURIComponent(t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

// resolve follows $ref (local ones only) and returns {s, ref}: the schema
// it leads to and the last reference taken ("" when none). A reference
// that cannot be followed leaves {s: {}, ref, broken: true}.
export function resolve(schema, root) {
  let s = schema;
  let ref = "";
  for (let hops = 0; s && typeof s === "object" && typeof s.$ref === "string" && hops < 32; hops++) {
    ref = s.$ref;
    if (!ref.startsWith("#")) return { s: {}, ref, broken: true };
    let pointer;
    try {
      pointer = decodeURIComponent(ref.slice(1));
    } catch {
      return { s: {}, ref, broken: true };
    }
    const next = get(root, pointer);
    if (next === undefined) return { s: {}, ref, broken: true };
    // Keywords beside $ref (2020-12) add to the target: keep the
    // annotations a reader wants, the target's structure wins.
    const { $ref, ...beside } = s;
    s = Object.keys(beside).length ? { ...next, ...pick(beside, ["description", "title", "default"]) } : next;
  }
  return { s: s && typeof s === "object" ? s : {}, ref };
}

function pick(o, keys) {
  const out = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

// typeOf names the schema's type: the first non-null one listed, else
// what its keywords imply.
export function typeOf(s) {
  if (typeof s.type === "string") return s.type;
  if (Array.isArray(s.type)) return s.type.find((t) => t !== "null") || "null";
  if (s.properties) return "object";
  if (s.items || s.prefixItems) return "array";
  const sample = s.const !== undefined ? s.const : Array.isArray(s.enum) && s.enum.length ? s.enum[0] : undefined;
  if (sample === undefined) return "";
  if (sample === null) return "null";
  if (Array.isArray(sample)) return "array";
  return typeof sample === "number" ? (Number.isInteger(sample) ? "integer" : "number") : typeof sample;
}

const nullable = (s) => Array.isArray(s.type) && s.type.includes("null");

// typeText is the type as a reader wants it: "array of string",
// "object", "category (recursive)", "any".
function typeText(s, root, seen) {
  const alts = s.oneOf || s.anyOf;
  if (Array.isArray(alts)) {
    return "one of: " + alts.map((a) => {
      const r = resolve(a, root);
      return r.ref ? refName(r.ref) : typeText(r.s, root, seen) || "any";
    }).join(" | ");
  }
  let t = typeOf(s) || "any";
  if (t === "array" && s.items && typeof s.items === "object") {
    const r = resolve(s.items, root);
    t = "array of " + (r.ref ? refName(r.ref) : typeText(r.s, root, seen) || "any");
  }
  if (s.format) t += " (" + s.format + ")";
  if (nullable(s)) t += " or null";
  return t;
}

// rules lists a schema's constraints in words.
export function rules(s) {
  const out = [];
  const range = (lo, hi, xlo, xhi, unit) => {
    const parts = [];
    if (lo !== undefined) parts.push("≥ " + lo);
    if (xlo !== undefined) parts.push("> " + xlo);
    if (hi !== undefined) parts.push("≤ " + hi);
    if (xhi !== undefined) parts.push("< " + xhi);
    if (parts.length) out.push((unit ? unit + " " : "") + parts.join(", "));
  };
  range(s.minimum, s.maximum, s.exclusiveMinimum, s.exclusiveMaximum, "");
  if (s.multipleOf !== undefined) out.push("multiple of " + s.multipleOf);
  if (s.minLength !== undefined || s.maxLength !== undefined) {
    if (s.minLength !== undefined && s.maxLength !== undefined) out.push(s.minLength + "–" + s.maxLength + " characters");
    else if (s.minLength !== undefined) out.push("at least " + s.minLength + " character" + (s.minLength === 1 ? "" : "s"));
    else out.push("at most " + s.maxLength + " characters");
  }
  if (s.pattern) out.push("matches " + s.pattern);
  if (s.minItems !== undefined) out.push("at least " + s.minItems + " item" + (s.minItems === 1 ? "" : "s"));
  if (s.maxItems !== undefined) out.push("at most " + s.maxItems + " item" + (s.maxItems === 1 ? "" : "s"));
  if (s.uniqueItems) out.push("no duplicates");
  if (Array.isArray(s.enum)) out.push("one of " + s.enum.map((v) => JSON.stringify(v)).join(", "));
  if (s.const !== undefined) out.push("always " + JSON.stringify(s.const));
  if (s.default !== undefined) out.push("default " + JSON.stringify(s.default));
  if (s.additionalProperties === false) out.push("no other fields");
  return out;
}

// view renders a schema as a table of its fields (nested fields indented,
// each row: field, type, required, rules and description). onRef, when
// given, makes each named reference a button that calls it.
export function view(schema, root, { onRef, caption } = {}) {
  const rows = [];
  walk(schema, root, "", 0, true, new Set(), rows, onRef);
  const table = h("table", { class: "schema" },
    caption ? h("caption", { text: caption }) : null,
    h("thead", null, h("tr", null,
      h("th", { scope: "col", text: "Field" }),
      h("th", { scope: "col", text: "Type" }),
      h("th", { scope: "col", text: "Rules and description" }))),
    h("tbody", null, rows));
  return h("div", { class: "table-wrap" }, table);
}

function walk(schema, root, name, depth, required, seen, rows, onRef) {
  const { s, ref, broken } = resolve(schema, root);
  const recursive = ref && seen.has(ref);
  const typeCell = h("td", { "data-label": "Type" });
  if (broken) typeCell.append("unresolved reference " + ref);
  else if (ref && onRef) {
    typeCell.append(h("button", { type: "button", class: "linkish", onclick: () => onRef(ref), text: refName(ref) }));
    if (recursive) typeCell.append(" (recursive)");
  } else {
    typeCell.append(recursive ? refName(ref) + " (recursive)" : typeText(s, root, seen));
  }
  const notes = rules(s);
  const desc = s.description || s.title;
  const label = name === "" ? (depth === 0 ? "(the whole value)" : name) : name;
  rows.push(h("tr", { class: "depth-" + Math.min(depth, 6) },
    h("th", { scope: "row", "data-label": "Field" },
      h("code", { text: label }),
      required && name !== "" ? h("span", { class: "req", text: "required" }) : null),
    typeCell,
    h("td", { "data-label": "Rules" },
      notes.length ? h("span", { class: "rules", text: notes.join(" · ") }) : null,
      notes.length && desc ? h("br") : null,
      desc ? h("span", { class: "desc", text: desc }) : null,
      !notes.length && !desc ? "—" : null)));
  if (recursive || broken || depth > 8) return;
  const next = new Set(seen);
  if (ref) next.add(ref);
  if (s.properties && typeof s.properties === "object") {
    const req = new Set(Array.isArray(s.required) ? s.required : []);
    for (const [k, v] of Object.entries(s.properties)) {
      walk(v, root, (name ? name + "." : "") + k, depth + 1, req.has(k), next, rows, onRef);
    }
  }
  if (typeOf(s) === "array" && s.items && typeof s.items === "object") {
    const it = resolve(s.items, root);
    if (it.s.properties && !(it.ref && next.has(it.ref))) {
      const seenItems = new Set(next);
      if (it.ref) seenItems.add(it.ref);
      const req = new Set(Array.isArray(it.s.required) ? it.s.required : []);
      for (const [k, v] of Object.entries(it.s.properties)) {
        walk(v, root, (name || "") + "[]." + k, depth + 1, req.has(k), seenItems, rows, onRef);
      }
    }
  }
}

// raw is a schema as indented JSON, folded away.
export function raw(schema, label) {
  return h("details", { class: "raw" },
    h("summary", { text: label || "JSON Schema" }),
    h("pre", { tabindex: "0" }, h("code", { text: pretty(schema) })));
}

// ---------------------------------------------------------------------
// Forms

// form builds the controls for a function's input schema. It returns
// {el, read(), write(value), fields, markErrors(errors), clearErrors()}:
// read() gives {value, present, errors} where errors are the mistakes
// caught before sending (a number that is not one, JSON that does not
// parse); everything else is for the gateway to judge, so its answer is
// the one the user sees.
export function form(schema, root) {
  const fields = [];
  const top = control(schema, root, "", "input", true, 0, new Set(), fields);
  return {
    el: top.el,
    fields,
    read: () => {
      const errors = [];
      const r = top.read(errors);
      return { value: r.present ? r.value : undefined, present: r.present, errors };
    },
    write: (v) => top.write(v),
    markErrors: (errors) => markErrors(fields, errors),
    clearErrors: () => fields.forEach((f) => f.setError([])),
  };
}

// fieldFor is the field that shows errors at pointer: the field itself,
// else its nearest ancestor that has a field ("/tags/3" → "/tags").
export function fieldFor(fields, pointer) {
  let p = pointer;
  for (;;) {
    const f = fields.find((x) => x.pointer === p);
    if (f) return f;
    if (p === "") return null;
    p = p.slice(0, p.lastIndexOf("/"));
  }
}

function markErrors(fields, errors) {
  const by = new Map();
  const placed = [];
  for (const e of errors) {
    const f = fieldFor(fields, typeof e.pointer === "string" ? e.pointer : "");
    // The root only speaks for fields it has none for: its errors belong
    // in the summary above the form.
    const target = f && !(f.pointer === "" && f.group) ? f : null;
    placed.push({ error: e, field: target });
    if (target) {
      if (!by.has(target)) by.set(target, []);
      by.get(target).push(e);
    }
  }
  for (const f of fields) f.setError(by.get(f) || []);
  return placed;
}

function control(schema, root, pointer, name, required, depth, seen, fields) {
  const { s, ref } = resolve(schema, root);
  const looped = ref && seen.has(ref);
  const next = new Set(seen);
  if (ref) next.add(ref);
  const t = typeOf(s);
  let c;
  if (looped || depth > 5) c = jsonControl(s, pointer, name, required);
  else if (s.const !== undefined) c = constControl(s, pointer, name, required);
  else if (Array.isArray(s.enum) && s.enum.length) c = selectControl(s, pointer, name, required);
  else if (t === "string") c = textControl(s, pointer, name, required);
  else if (t === "integer" || t === "number") c = numberControl(s, pointer, name, required, t === "integer");
  else if (t === "boolean") c = boolControl(s, pointer, name, required);
  else if (t === "object" && s.properties && !s.oneOf && !s.anyOf) c = objectControl(s, root, pointer, name, required, depth, next, fields);
  else if (t === "array" && s.items && Array.isArray(resolve(s.items, root).s.enum) && (s.uniqueItems || s.maxItems !== undefined)) c = choicesControl(s, resolve(s.items, root).s, pointer, name, required);
  else c = jsonControl(s, pointer, name, required);
  fields.push(c);
  return c;
}

// The parts every leaf field shares: a label, a hint made of the
// description and the rules, and a place for its errors, all tied to
// the control with aria-describedby.
function leaf(s, pointer, name, required, input, { inline = false } = {}) {
  const id = uid("f");
  const hintId = id + "-hint";
  const errId = id + "-err";
  input.id = id;
  input.dataset.pointer = pointer;
  input.setAttribute("aria-describedby", hintId + " " + errId);
  if (required) input.setAttribute("aria-required", "true");
  const hint = [s.description || s.title, rules(s).join(" · ")].filter(Boolean).join(" — ");
  const label = h("label", { for: id },
    h("span", { class: "fname", text: name }),
    required ? h("span", { class: "req", text: "required" }) : null);
  const err = h("p", { class: "field-error", id: errId, "data-error-for": pointer, hidden: true });
  const el = h("div", { class: inline ? "field inline" : "field" },
    inline ? [input, label] : [label, input],
    h("p", { class: "hint", id: hintId, text: hint }),
    err);
  return {
    pointer, name, el, input,
    setError(list) {
      err.replaceChildren();
      for (const e of list) err.append(h("span", { text: e.message || String(e) }));
      err.hidden = list.length === 0;
      if (list.length) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
    focus() {
      input.focus();
    },
  };
}

function textControl(s, pointer, name, required) {
  const kind = { email: "email", uri: "url", date: "date", time: "time" }[s.format] || "text";
  const long = s.maxLength !== undefined && s.maxLength > 200;
  const input = long && s.format === undefined && s.pattern === undefined
    ? h("textarea", { rows: "2", spellcheck: "false" })
    : h("input", { type: kind, spellcheck: "false", autocomplete: "off" });
  if (s.pattern && input.tagName === "INPUT" && kind === "text") input.setAttribute("pattern", s.pattern);
  if (s.default !== undefined) input.setAttribute("placeholder", String(s.default));
  else if (s.examples && s.examples.length) input.setAttribute("placeholder", String(s.examples[0]));
  const f = leaf(s, pointer, name, required, input);
  f.read = () => {
    const v = input.value;
    if (v === "") return required ? { present: true, value: "" } : { present: false };
    return { present: true, value: v };
  };
  f.write = (v) => {
    input.value = v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v);
  };
  return f;
}

function numberControl(s, pointer, name, required, integer) {
  const input = h("input", { type: "number", inputmode: integer ? "numeric" : "decimal", step: integer ? "1" : "any" });
  if (s.minimum !== undefined) input.setAttribute("min", String(s.minimum));
  if (s.maximum !== undefined) input.setAttribute("max", String(s.maximum));
  if (s.default !== undefined) input.setAttribute("placeholder", String(s.default));
  const f = leaf(s, pointer, name, required, input);
  f.read = (errors) => {
    if (input.validity && input.validity.badInput) {
      errors.push({ pointer, message: "not a number" });
      return { present: false };
    }
    if (input.value === "") return { present: false };
    const n = Number(input.value);
    if (!Number.isFinite(n)) {
      errors.push({ pointer, message: "not a number" });
      return { present: false };
    }
    return { present: true, value: n };
  };
  f.write = (v) => {
    input.value = typeof v === "number" ? String(v) : "";
  };
  return f;
}

function boolControl(s, pointer, name, required) {
  const input = h("input", { type: "checkbox" });
  if (s.default === true) input.checked = true;
  const f = leaf(s, pointer, name, required, input, { inline: true });
  f.read = () => {
    if (required || input.checked || s.default === true) return { present: true, value: input.checked };
    return { present: false };
  };
  f.write = (v) => {
    input.checked = v === undefined ? s.default === true : v === true;
  };
  return f;
}

function selectControl(s, pointer, name, required) {
  const input = h("select");
  if (!required || s.default !== undefined) {
    const text = s.default !== undefined ? "— not set (default " + JSON.stringify(s.default) + ") —" : "— not set —";
    input.append(h("option", { value: "", text }));
  }
  for (const v of s.enum) input.append(h("option", { value: JSON.stringify(v), text: typeof v === "string" ? v : JSON.stringify(v) }));
  const f = leaf(s, pointer, name, required, input);
  f.read = () => (input.value === "" ? { present: false } : { present: true, value: JSON.parse(input.value) });
  f.write = (v) => {
    const want = v === undefined ? "" : JSON.stringify(v);
    input.value = [...input.options].some((o) => o.value === want) ? want : input.options[0].value;
  };
  return f;
}

function constControl(s, pointer, name, required) {
  const input = h("input", { type: "text", readonly: true, value: JSON.stringify(s.const) });
  const f = leaf(s, pointer, name, required, input);
  f.read = () => ({ present: required, value: s.const });
  f.write = () => {};
  return f;
}

// choicesControl is an array of distinct enum values, as checkboxes.
function choicesControl(s, items, pointer, name, required) {
  const id = uid("g");
  const errId = id + "-err";
  const boxes = items.enum.map((v) => {
    const bid = uid("c");
    const input = h("input", { type: "checkbox", id: bid, value: JSON.stringify(v), "data-pointer": pointer });
    return { v, input, el: h("div", { class: "field inline" }, input, h("label", { for: bid, text: typeof v === "string" ? v : JSON.stringify(v) })) };
  });
  const err = h("p", { class: "field-error", id: errId, "data-error-for": pointer, hidden: true });
  const hint = [s.description || s.title, rules(s).join(" · ")].filter(Boolean).join(" — ");
  const el = h("fieldset", { class: "group choices", "aria-describedby": errId, "data-pointer": pointer },
    h("legend", null, h("span", { class: "fname", text: name }), required ? h("span", { class: "req", text: "required" }) : null),
    hint ? h("p", { class: "hint", text: hint }) : null,
    h("div", { class: "choice-list" }, boxes.map((b) => b.el)),
    err);
  return {
    pointer, name, el, group: false,
    read() {
      const picked = boxes.filter((b) => b.input.checked).map((b) => b.v);
      return picked.length || required ? { present: true, value: picked } : { present: false };
    },
    write(v) {
      const want = Array.isArray(v) ? v.map((x) => JSON.stringify(x)) : [];
      for (const b of boxes) b.input.checked = want.includes(JSON.stringify(b.v));
    },
    setError(list) {
      err.replaceChildren(...list.map((e) => h("span", { text: e.message })));
      err.hidden = list.length === 0;
      for (const b of boxes) {
        if (list.length) b.input.setAttribute("aria-invalid", "true");
        else b.input.removeAttribute("aria-invalid");
      }
    },
    focus() {
      boxes[0] && boxes[0].input.focus();
    },
  };
}

// jsonControl is the fallback for what has no better control (arrays,
// free-form objects, alternatives, recursion): the value as JSON text.
function jsonControl(s, pointer, name, required) {
  const t = typeOf(s);
  const input = h("textarea", { rows: "4", spellcheck: "false", class: "json",
    placeholder: t === "array" ? "[ … ] as JSON" : t === "object" ? "{ … } as JSON" : "a JSON value" });
  const f = leaf({ ...s, description: [s.description, "written as JSON"].filter(Boolean).join("; ") }, pointer, name, required, input);
  f.read = (errors) => {
    const text = input.value.trim();
    if (text === "") return { present: false };
    try {
      return { present: true, value: JSON.parse(text) };
    } catch (e) {
      errors.push({ pointer, message: "not valid JSON: " + e.message });
      return { present: false };
    }
  };
  f.write = (v) => {
    input.value = v === undefined ? "" : pretty(v);
  };
  return f;
}

function objectControl(s, root, pointer, name, required, depth, seen, fields) {
  const req = new Set(Array.isArray(s.required) ? s.required : []);
  const children = Object.entries(s.properties).map(([k, v]) =>
    ({ k, c: control(v, root, pointer + "/" + escapeToken(k), k, req.has(k), depth + 1, seen, fields) }));
  const errId = uid("o") + "-err";
  const err = h("p", { class: "field-error", id: errId, "data-error-for": pointer, hidden: true });
  const hint = [s.description || s.title, rules(s).filter((r) => r !== "no other fields").join(" · ")].filter(Boolean).join(" — ");
  const el = depth === 0
    ? h("div", { class: "fields" }, hint ? h("p", { class: "hint", text: hint }) : null, children.map((x) => x.c.el), err)
    : h("fieldset", { class: "group", "data-pointer": pointer, "aria-describedby": errId },
      h("legend", null, h("span", { class: "fname", text: name }), required ? h("span", { class: "req", text: "required" }) : null),
      hint ? h("p", { class: "hint", text: hint }) : null,
      children.map((x) => x.c.el),
      err);
  return {
    pointer, name, el, group: true,
    read(errors) {
      const out = {};
      let any = false;
      for (const { k, c } of children) {
        const r = c.read(errors);
        if (r.present) {
          out[k] = r.value;
          any = true;
        }
      }
      return any || required || depth === 0 ? { present: true, value: out } : { present: false };
    },
    write(v) {
      const o = v && typeof v === "object" && !Array.isArray(v) ? v : {};
      for (const { k, c } of children) c.write(o[k]);
    },
    setError(list) {
      err.replaceChildren(...list.map((e) => h("span", { text: e.message })));
      err.hidden = list.length === 0;
    },
    focus() {
      children.length && children[0].c.focus();
    },
  };
}

// canonical is JSON text with sorted keys, to compare two values.
export function canonical(v) {
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  if (v && typeof v === "object") {
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
  }
  return JSON.stringify(v);
}
