// Building the DOM without markup: every piece of data becomes a text
// node or an attribute value, never HTML, so nothing a function, a schema
// or a caller wrote can turn into script or markup on the page.

// h makes an element. attrs: "class", "text", "on<event>" (a function),
// properties listed in PROPS, anything else an attribute; false and
// null attributes are left out. children: nodes, strings (as text),
// arrays of them, or null.
const PROPS = new Set(["value", "checked", "selected", "disabled", "hidden", "indeterminate"]);

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// link is an in-console link to a route (#/…); parts are encoded.
export function route(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(p)).join("/");
}

// pretty is a value as indented JSON text.
export function pretty(v) {
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

// when is a timestamp in the user's locale, with the ISO text as a title.
export function when(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  if (isNaN(d)) return h("span", { text: iso });
  return h("time", { datetime: iso, title: iso, text: d.toLocaleString() });
}

// unavailable is the marked box for what the API cannot give yet: it says
// so instead of showing numbers the console does not have.
export function unavailable(title, items, note) {
  const id = uid("na");
  return h("section", { class: "unavailable", "aria-labelledby": id },
    h("h2", { id, text: title }),
    h("p", { text: note || "The gateway's API does not serve these yet, so the console leaves them out rather than guess:" }),
    h("ul", null, items.map((i) => h("li", { text: i }))));
}

let counter = 0;

// uid is an id unique on the page.
export function uid(prefix) {
  counter += 1;
  return (prefix || "id") + "-" + counter;
}
