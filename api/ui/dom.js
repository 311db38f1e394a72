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

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The words of a query worth highlighting: identifiers and words of 2+ characters. */
export function queryWords(query) {
  const words = new Set();
  for (const word of String(query).toLowerCase().match(/[\p{L}\p{N}_]{2,}/gu) || []) {
    words.add(word);
    // match_file also highlights "match" and "file" where they stand alone
    for (const part of word.split("_")) if (part.length > 2) words.add(part);
  }
  return [...words].sort((a, b) => b.length - a.length);
}

/** ``text`` as text nodes, with each of ``words`` (case-insensitive) in a <mark>. */
export function highlighted(text, words) {
  const fragment = document.createDocumentFragment();
  if (!words.length) {
    fragment.append(text);
    return fragment;
  }
  const pattern = new RegExp(words.map(escapeRegExp).join("|"), "giu");
  let last = 0;
  for (const found of text.matchAll(pattern)) {
    if (found.index > last) fragment.append(text.slice(last, found.index));
    fragment.append(h("mark", {}, found[0]));
    last = found.index + found[0].length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
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
