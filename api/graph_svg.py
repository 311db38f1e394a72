"""A symbol's neighbourhood drawn as a standalone SVG picture.

Input: the ``{"nodes", "edges"}`` of :func:`pipeline.search.searcher.symbol_graph`. The named
symbols sit in the middle, their neighbours on a circle around them (callers and
containers above, callees, members and bases below, so arrows mostly point down);
edges are arrows coloured by type, with a legend. Every text is XML-escaped, and each
node has a ``<title>`` (its qualified name and place) that browsers show on hover.
Deterministic: the same graph gives the same bytes. Pure: no I/O.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape as _escape
from xml.sax.saxutils import quoteattr as _quoteattr

# XML 1.0 forbids these even as character references; a file name may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
WIDTH, HEIGHT = 960, 640
NODE_W, NODE_H = 150, 30
COLOURS = {"CALLS": "#2563eb", "CONTAINS": "#059669", "INHERITS": "#d97706"}
MAX_LABEL_CHARS = 22


def escape(text: str) -> str:
    """XML-escaped ``text``, characters XML cannot hold shown as U+FFFD."""
    return _escape(_NOT_XML.sub("\ufffd", text))


def quoteattr(text: str) -> str:
    return _quoteattr(_NOT_XML.sub("\ufffd", text))


def _label(node: Mapping[str, Any]) -> str:
    name = str(node.get("name") or node.get("qualified_name") or "?")
    return name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"


def _title(node: Mapping[str, Any]) -> str:
    place = ""
    if node.get("path"):
        place = f" ({node['path']}:{node.get('start_line') or '?'})"
    kind = f"{node['kind']} " if node.get("kind") else ""
    return f"{kind}{node.get('qualified_name', '')}{place}"


def layout(
    nodes: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[float, float]]:
    """Centre of each node by qualified name: matches in the middle, neighbours around."""
    matches = [str(n["qualified_name"]) for n in nodes if n.get("role") == "match"]
    others = [str(n["qualified_name"]) for n in nodes if n.get("role") != "match"]
    into = {str(e["source"]) for e in edges if str(e["target"]) in matches}
    upper = [n for n in others if n in into]
    lower = [n for n in others if n not in into]
    cx, cy = WIDTH / 2, HEIGHT / 2
    places: dict[str, tuple[float, float]] = {}
    step = NODE_W + 20
    for i, name in enumerate(matches):
        places[name] = (cx + (i - (len(matches) - 1) / 2) * step, cy)
    rx, ry = WIDTH / 2 - NODE_W / 2 - 10, HEIGHT / 2 - NODE_H - 10
    for group, (start, end) in ((upper, (math.pi, 2 * math.pi)), (lower, (0.0, math.pi))):
        for i, name in enumerate(group):
            angle = start + (end - start) * (i + 1) / (len(group) + 1)
            places[name] = (cx - rx * math.cos(angle), cy + ry * math.sin(angle))
    return places


def render_svg(graph: Mapping[str, Any]) -> str:
    """The SVG document of a neighbourhood."""
    nodes: list[Mapping[str, Any]] = list(graph.get("nodes", []))
    edges: list[Mapping[str, Any]] = list(graph.get("edges", []))
    places = layout(nodes, edges)
    title = f"Neighbourhood of {graph.get('name', '')} in {graph.get('repo', '')}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label={quoteattr(title)} '
        'font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        "<defs>",
    ]
    for kind, colour in COLOURS.items():
        out.append(
            f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" '
            f'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
            f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    out.append(f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>')
    for edge in edges:
        source, target = places.get(str(edge["source"])), places.get(str(edge["target"]))
        if source is None or target is None:
            continue
        kind = str(edge.get("type", "CALLS"))
        colour = COLOURS.get(kind, "#6b7280")
        (x1, y1), (x2, y2) = source, _border(source, target)
        marker = f' marker-end="url(#arrow-{kind})"' if kind in COLOURS else ""
        out.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{colour}" stroke-width="1.5"{marker}><title>{escape(kind)}</title></line>'
        )
    for node in nodes:
        x, y = places[str(node["qualified_name"])]
        match = node.get("role") == "match"
        fill, stroke = ("#fef3c7", "#b45309") if match else ("#f3f4f6", "#6b7280")
        out.append(
            f'<g class="node"><title>{escape(_title(node))}</title>'
            f'<rect x="{x - NODE_W / 2:.1f}" y="{y - NODE_H / 2:.1f}" width="{NODE_W}" '
            f'height="{NODE_H}" rx="6" fill="{fill}" stroke="{stroke}"/>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">'
            f"{escape(_label(node))}</text></g>"
        )
    for i, (kind, colour) in enumerate(COLOURS.items()):
        y = 20 + 18 * i
        out.append(
            f'<line x1="12" y1="{y}" x2="40" y2="{y}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="46" y="{y + 4}">{kind.lower()}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _border(source: tuple[float, float], target: tuple[float, float]) -> tuple[float, float]:
    """Where the line from ``source`` meets the box of ``target`` (arrows stop there)."""
    (x1, y1), (x2, y2) = source, target
    dx, dy = x1 - x2, y1 - y2
    if dx == 0 and dy == 0:
        return target
    scale = min(
        (NODE_W / 2) / abs(dx) if dx else math.inf, (NODE_H / 2) / abs(dy) if dy else math.inf
    )
    return x2 + dx * scale, y2 + dy * scale
