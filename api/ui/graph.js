// A result's graph neighbourhood drawn as plain SVG: the symbol in the middle, its
// container to its left, callers above and callees below. Built with DOM calls only,
// as wide as the panel that shows it (one SVG unit is about one pixel, so the names
// stay readable on a phone).
//
// Names are never cut: each box is as wide as its name (the short name on the first
// line, its class or module smaller below it); a name wider than the panel wraps at
// "_" and camel-case boundaries; a row shows as many boxes as fit, then "+N more"
// (the lists under the graph have them all).

import { s, shortName } from "./dom.js";

const MIN_WIDTH = 300;
const MAX_WIDTH = 640;
const MARGIN = 8;
const GAP = 10;
const PAD_X = 8;
const MAIN_PX = 12;
const SUB_PX = 10.5;
// the labels are monospace (app.css: .graph-svg text); 0.62 em is a little more than
// the advance of DejaVu Sans Mono, Menlo and Consolas (0.60-0.61 em)
const CHAR_EM = 0.62;
const LINE_PX = 14;
const SUB_LINE_PX = 13;
const ROW_GAP = 56;
const MORE_WIDTH = 84;
let drawn = 0;

/** The last two parts of a qualified name: ``Pattern.match_file``, ``util.match_file``. */
export function label(qualifiedName) {
  return String(qualifiedName || "").split(".").slice(-2).join(".");
}

function textWidth(text, px) {
  return text.length * px * CHAR_EM;
}

/** ``text`` in lines of at most ``chars`` characters, broken after "_" or "." or
 * before an inner capital; a piece longer than a line (no such boundary) is split. */
export function wrap(text, chars) {
  const pieces = text.match(/[^_.A-Z]*[_.]+|[A-Z]?[^_.A-Z]*[_.]*/g).filter(Boolean);
  const lines = [];
  let line = "";
  for (let piece of pieces) {
    while (piece.length > chars) {
      if (line) lines.push(line);
      lines.push(piece.slice(0, chars));
      piece = piece.slice(chars);
      line = "";
    }
    if ((line + piece).length > chars && line) {
      lines.push(line);
      line = "";
    }
    line += piece;
  }
  if (line) lines.push(line);
  return lines;
}

/** A box for ``qualifiedName`` no wider than ``room``: its lines and size. */
function box(qualifiedName, room, { note = "", more = false } = {}) {
  const parts = String(qualifiedName || "").split(".");
  const main = more ? qualifiedName : parts[parts.length - 1] || "?";
  const parent = more ? "" : parts.slice(0, -1).join(".");
  const sub = [parent.split(".").pop(), note].filter(Boolean).join(" · ");
  const inner = Math.max(40, room - 2 * PAD_X);
  const mainLines = textWidth(main, MAIN_PX) <= inner
    ? [main] : wrap(main, Math.max(4, Math.floor(inner / (MAIN_PX * CHAR_EM))));
  const subLines = !sub ? [] : textWidth(sub, SUB_PX) <= inner
    ? [sub] : wrap(sub, Math.max(4, Math.floor(inner / (SUB_PX * CHAR_EM))));
  const widest = Math.max(...mainLines.map((l) => textWidth(l, MAIN_PX)),
    ...subLines.map((l) => textWidth(l, SUB_PX)));
  return {
    mainLines,
    subLines,
    width: Math.ceil(Math.min(room, Math.max(56, widest + 2 * PAD_X))),
    height: 10 + mainLines.length * LINE_PX + subLines.length * SUB_LINE_PX,
  };
}

/** The boxes of one row, centred: as many as fit in ``width``, then "+N more". */
function row(symbols, role, self, width) {
  const room = width - 2 * MARGIN;
  const boxes = [];
  let used = 0;
  for (const [i, sym] of symbols.entries()) {
    const name = sym.qualified_name;
    const note = name === self ? "itself" : "";
    // room for this box, and for "+N more" after it when others follow
    const free = room - used - (i < symbols.length - 1 ? GAP + MORE_WIDTH : 0);
    const natural = box(name, room, { note });
    if (boxes.length && natural.width > free) break;
    // the first box always shows: its name wraps to fit
    const b = natural.width > free ? box(name, free, { note }) : natural;
    boxes.push({ ...b, title: name, role });
    used += b.width + GAP;
  }
  const more = symbols.length - boxes.length;
  if (more > 0) {
    boxes.push({ ...box(`+${more} more`, MORE_WIDTH, { more: true }), width: MORE_WIDTH,
      title: `${more} more ${role}s: see the list below`, role, more: true });
  }
  const total = boxes.reduce((sum, b) => sum + b.width, 0) + GAP * (boxes.length - 1);
  let x = Math.max(MARGIN, (width - total) / 2);
  return boxes.map((b) => {
    const placed = { ...b, x };
    x += b.width + GAP;
    return placed;
  });
}

function node(b) {
  const cx = b.x + b.width / 2;
  let y = b.y + 5;
  const lines = [
    ...b.mainLines.map((text) => {
      y += LINE_PX;
      return s("text", { x: cx, y: y - 3, "text-anchor": "middle", class: "label-main" }, text);
    }),
    ...b.subLines.map((text) => {
      y += SUB_LINE_PX;
      return s("text", { x: cx, y: y - 3, "text-anchor": "middle", class: "label-sub" }, text);
    }),
  ];
  return s(
    "g",
    { class: `node node-${b.role}${b.more ? " node-more" : ""}`, "data-role": b.role,
      "data-name": b.more ? null : b.title },
    s("title", {}, b.title),
    s("rect", { x: b.x, y: b.y, width: b.width, height: b.height, rx: 6, ry: 6 }),
    lines,
  );
}

function edge(from, to, kind, marker) {
  return s("line", { class: `edge edge-${kind}`, x1: from.x, y1: from.y, x2: to.x, y2: to.y,
    "marker-end": `url(#${marker})` });
}

function tallest(boxes) {
  return boxes.reduce((most, b) => Math.max(most, b.height), 0);
}

/** The middle row: the container (if any) on the left, the symbol centred when it can be. */
function middle(symbol, container, width) {
  const room = width - 2 * MARGIN;
  const centre = { ...box(symbol, container ? room * 0.6 : room), title: symbol, role: "symbol" };
  if (!container) return [{ ...centre, x: (width - centre.width) / 2 }];
  const name = container.qualified_name;
  const left = { ...box(name, room - centre.width - 36), title: name, role: "container",
    x: MARGIN };
  const wanted = (width - centre.width) / 2;
  const x = Math.min(Math.max(wanted, left.x + left.width + 36), width - MARGIN - centre.width);
  return [{ ...centre, x }, left];
}

/** The SVG of ``symbol`` (a qualified name) and its ``neighbours``, about
 * ``available`` pixels wide. */
export function neighbourhoodGraph(symbol, neighbours, available = MAX_WIDTH) {
  const width = Math.round(Math.max(MIN_WIDTH, Math.min(MAX_WIDTH, available || MAX_WIDTH)));
  const callers = (neighbours && neighbours.callers) || [];
  const callees = (neighbours && neighbours.callees) || [];
  const container = neighbours && neighbours.container;
  drawn += 1;
  const marker = `arrow-${drawn}`;
  const titleId = `graph-title-${drawn}`;
  const summary = `${shortName(symbol)}: ${callers.length} caller${callers.length === 1 ? "" : "s"}, `
    + `${callees.length} callee${callees.length === 1 ? "" : "s"}`
    + (container ? `, in ${container.qualified_name}` : "");

  const above = row(callers, "caller", symbol, width);
  const mid = middle(symbol, container, width);
  const below = row(callees, "callee", symbol, width);
  let y = MARGIN;
  const place = (boxes) => {
    const height = tallest(boxes);
    for (const b of boxes) b.y = y + (height - b.height) / 2;
    if (boxes.length) y += height + ROW_GAP;
  };
  place(above);
  place(mid);
  place(below);
  const height = Math.ceil(y - ROW_GAP + MARGIN);
  const [centre, box_] = mid;
  const top = { x: centre.x + centre.width / 2, y: centre.y };
  const bottom = { x: top.x, y: centre.y + centre.height };
  const edges = [
    ...above.map((n) => edge({ x: n.x + n.width / 2, y: n.y + n.height },
      { x: top.x, y: top.y - 2 }, "calls", marker)),
    ...below.map((n) => edge(bottom, { x: n.x + n.width / 2, y: n.y - 2 }, "calls", marker)),
  ];
  if (box_) {
    edges.push(edge({ x: box_.x + box_.width, y: box_.y + box_.height / 2 },
      { x: centre.x - 2, y: centre.y + centre.height / 2 }, "contains", marker));
  }
  return s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": titleId,
      class: "graph-svg", preserveAspectRatio: "xMidYMid meet" },
    s("title", { id: titleId }, summary),
    s("defs", {},
      s("marker", { id: marker, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
        markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }))),
    s("g", { class: "edges" }, edges),
    s("g", { class: "nodes" }, [...above, ...mid, ...below].map(node)),
  );
}
