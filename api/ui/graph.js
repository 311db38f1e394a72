// A result's graph neighbourhood drawn as plain SVG: the symbol in the middle, its
// container to its left, callers above and callees below. Built with DOM calls only,
// as wide as the panel that shows it (one SVG unit is about one pixel, so the names
// stay readable on a phone).

import { s, shortName } from "./dom.js";

const MIN_WIDTH = 320;
const MAX_WIDTH = 640;
const COMPACT_WIDTH = 500;
const NODE_HEIGHT = 30;
const ROW_Y = { callers: 16, middle: 116, callees: 216 };
const HEIGHT = ROW_Y.callees + NODE_HEIGHT + 16;
let drawn = 0;

/** The last two parts of a qualified name: ``Pattern.match_file``, ``util.match_file``. */
export function label(qualifiedName) {
  return String(qualifiedName || "").split(".").slice(-2).join(".");
}

function fit(text, width) {
  // too long: drop the module or class first (the <title> keeps the whole name)
  const chars = Math.max(4, Math.floor((width - 16) / 7));
  const short = text.length > chars && text.includes(".") ? text.slice(text.indexOf(".") + 1) : text;
  return short.length > chars ? `${short.slice(0, chars - 1)}…` : short;
}

function node({ x, y, width, label: text, title, role, more }) {
  return s(
    "g",
    { class: `node node-${role}${more ? " node-more" : ""}`, "data-role": role,
      "data-name": more ? null : title },
    s("title", {}, title),
    s("rect", { x, y, width, height: NODE_HEIGHT, rx: 6, ry: 6 }),
    s("text", { x: x + width / 2, y: y + NODE_HEIGHT / 2 + 4, "text-anchor": "middle" },
      fit(text, width)),
  );
}

function row(symbols, y, role, self, width) {
  const shown = symbols.slice(0, width < COMPACT_WIDTH ? 3 : 5);
  const more = symbols.length - shown.length;
  const items = shown.map((sym) => ({
    label: sym.qualified_name === self ? `${label(self)} (itself)` : label(sym.qualified_name),
    title: sym.qualified_name,
  }));
  if (more > 0) items.push({ label: `+${more} more`, title: `${more} more ${role}s`, more: true });
  const gap = 10;
  const each = Math.min(160, (width - gap * (items.length + 1)) / Math.max(items.length, 1));
  const total = items.length * each + (items.length - 1) * gap;
  const left = (width - total) / 2;
  return items.map((item, i) => ({ ...item, x: left + i * (each + gap), y, width: each, role }));
}

function edge(from, to, kind, marker) {
  return s("line", { class: `edge edge-${kind}`, x1: from.x, y1: from.y, x2: to.x, y2: to.y,
    "marker-end": `url(#${marker})` });
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
  const boxWidth = Math.min(150, Math.round(width * 0.35));
  const centreWidth = width < COMPACT_WIDTH ? 150 : 170;
  let centreX = (width - centreWidth) / 2;
  if (container) {
    const wanted = Math.max(16 + boxWidth + 36, centreX + (width < COMPACT_WIDTH ? 0 : 70));
    centreX = Math.min(wanted, width - 8 - centreWidth);
  }
  const centre = { x: centreX, y: ROW_Y.middle, width: centreWidth };
  const summary = `${shortName(symbol)}: ${callers.length} caller${callers.length === 1 ? "" : "s"}, `
    + `${callees.length} callee${callees.length === 1 ? "" : "s"}`
    + (container ? `, in ${container.qualified_name}` : "");

  const above = row(callers, ROW_Y.callers, "caller", symbol, width);
  const below = row(callees, ROW_Y.callees, "callee", symbol, width);
  const nodes = [
    ...above,
    { ...centre, label: label(symbol), title: symbol, role: "symbol" },
    ...below,
  ];
  const edges = [
    ...above.map((n) => edge({ x: n.x + n.width / 2, y: n.y + NODE_HEIGHT },
      { x: centre.x + centre.width / 2, y: centre.y - 2 }, "calls", marker)),
    ...below.map((n) => edge({ x: centre.x + centre.width / 2, y: centre.y + NODE_HEIGHT },
      { x: n.x + n.width / 2, y: n.y - 2 }, "calls", marker)),
  ];
  if (container) {
    const box = { x: 16, y: ROW_Y.middle, width: boxWidth, label: label(container.qualified_name),
      title: container.qualified_name, role: "container" };
    nodes.push(box);
    edges.push(edge({ x: box.x + box.width, y: box.y + NODE_HEIGHT / 2 },
      { x: centre.x - 2, y: centre.y + NODE_HEIGHT / 2 }, "contains", marker));
  }
  return s(
    "svg",
    { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "img", "aria-labelledby": titleId,
      class: "graph-svg", preserveAspectRatio: "xMidYMid meet" },
    s("title", { id: titleId }, summary),
    s("defs", {},
      s("marker", { id: marker, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
        markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }))),
    s("g", { class: "edges" }, edges),
    s("g", { class: "nodes" }, nodes.map(node)),
  );
}
