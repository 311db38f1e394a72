// Small DOM helpers. Every piece of data becomes a text node or an attribute value set
// through the DOM; nothing is ever parsed as HTML (no HTML-string setters anywhere).

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** An HTML element: h("li", {class: "x"}, "text", child). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
}

/** A dotted or snake/camel-case name with line-break chances after "." and "_" and
 * before an inner capital (<wbr>), so that a narrow column wraps it between words,
 * never inside one. */
export function breakable(name) {
  const text = String(name || "");
  const out = [];
  let piece = "";
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    const camel = i > 0 && /[A-Z]/.test(char) && /[a-z0-9]/.test(text[i - 1]);
    if (camel && piece) {
      out.push(piece, h("wbr"));
      piece = "";
    }
    piece += char;
    if ((char === "." || char === "_" || char === "/") && i < text.length - 1) {
      out.push(piece, h("wbr"));
      piece = "";
    }
  }
  if (piece) out.push(piece);
  return out;
}

/** A commit or snapshot id short enough for a title: a hex sha to 7 characters, a
 * ``tree-<hex>`` content id to its prefix and 7; anything else as it is, at most 16. */
export function shortCommit(commit) {
  const text = String(commit || "");
  const found = text.match(/^([a-z]+-)?([0-9a-f]{8,})$/);
  if (found) return `${found[1] || ""}${found[2].slice(0, 7)}`;
  return text.length > 16 ? `${text.slice(0, 15)}…` : text;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function shortName(qualifiedName) {
  const name = String(qualifiedName || "");
  return name.slice(name.lastIndexOf(".") + 1) || name;
}
