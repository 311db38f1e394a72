"""The neighbourhood picture: a well-formed, escaped, deterministic SVG document.

Pure: the graphs are hand-made ``{"nodes", "edges"}`` dicts (the shape of
:func:`pipeline.search.searcher.symbol_graph`) and one read from the in-memory graph store.
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from api.graph_svg import (
    COLOURS,
    HEIGHT,
    MAX_LABEL_CHARS,
    NODE_H,
    NODE_W,
    WIDTH,
    layout,
    render_svg,
)
from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.models import RepoRef
from pipeline.search.searcher import symbol_graph
from tests.pipeline.graphs import file_graphs

NS = "{http://www.w3.org/2000/svg}"
GREY = "#6b7280"


def node(qualified_name: str, role: str = "neighbour", **props: Any) -> dict[str, Any]:
    props.setdefault("name", qualified_name.rsplit(".", 1)[-1])
    return {"qualified_name": qualified_name, "role": role, **props}


def edge(source: str, target: str, kind: str = "CALLS") -> dict[str, str]:
    return {"source": source, "target": target, "type": kind}


GRAPH: dict[str, Any] = {
    "repo": "shop",
    "name": "helper",
    "nodes": [
        node("shop.app.App.run", kind="method", path="shop/app.py", start_line=5),
        node("shop.base", kind="module", path="shop/base.py", start_line=1),
        node("shop.base.Base.run", kind="method", path="shop/base.py", start_line=2),
        node("shop.base.helper", "match", kind="function", path="shop/base.py", start_line=9),
        node("shop.base.inner", kind="function", path="shop/base.py", start_line=12),
        node("shop.base.Sub", kind="class"),
    ],
    "edges": [
        edge("shop.app.App.run", "shop.base.helper"),
        edge("shop.base", "shop.base.helper", "CONTAINS"),
        edge("shop.base.Base.run", "shop.base.helper"),
        edge("shop.base.helper", "shop.base.inner"),
        edge("shop.base.Sub", "shop.base.helper", "INHERITS"),
    ],
}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def node_groups(root: ET.Element) -> dict[str, ET.Element]:
    """The node groups by the qualified name ending their hover title."""
    groups = {}
    for group in root.iter(f"{NS}g"):
        title = group.find(f"{NS}title")
        assert title is not None and title.text is not None
        groups[title.text] = group
    return groups


def edge_lines(root: ET.Element) -> list[ET.Element]:
    """Edges are lines with a title (the legend's lines have none)."""
    return [line for line in root.iter(f"{NS}line") if line.find(f"{NS}title") is not None]


def label(group: ET.Element) -> str:
    text = group.find(f"{NS}text")
    assert text is not None and text.text is not None
    return text.text


# --- the document ---------------------------------------------------------------------


def test_the_svg_is_well_formed_and_has_one_group_per_node() -> None:
    root = parse(render_svg(GRAPH))
    assert (root.get("width"), root.get("height")) == (str(WIDTH), str(HEIGHT))
    assert root.get("viewBox") == f"0 0 {WIDTH} {HEIGHT}"
    assert root.get("aria-label") == "Neighbourhood of helper in shop"
    title = root.find(f"{NS}title")
    assert title is not None and title.text == "Neighbourhood of helper in shop"
    groups = node_groups(root)
    assert len(groups) == len(GRAPH["nodes"])
    assert "function shop.base.helper (shop/base.py:9)" in groups
    assert "class shop.base.Sub" in groups, "no place without a path"
    assert sorted(label(g) for g in groups.values()) == sorted(n["name"] for n in GRAPH["nodes"])


def test_the_same_graph_gives_the_same_bytes() -> None:
    first = render_svg(GRAPH)
    again = render_svg({k: (list(v) if isinstance(v, list) else v) for k, v in GRAPH.items()})
    assert first == again


def test_an_empty_graph_is_still_a_picture() -> None:
    root = parse(render_svg({}))
    assert node_groups(root) == {}
    assert edge_lines(root) == []
    assert root.get("aria-label") == "Neighbourhood of  in "


HOSTILE = '<script>alert("x")</script>&amp;\'"'


def test_every_text_is_escaped() -> None:
    graph = {
        "repo": 'r&d"<b>',
        "name": HOSTILE,
        "nodes": [
            node(f"m.{HOSTILE}", "match", name='<script>&"', kind="<k>", path="a<b>&c.py",
                 start_line=3),
            node("m.ok", name="ok & <fine>"),
        ],
        "edges": [edge(f"m.{HOSTILE}", "m.ok", 'CALLS"><script>x</script>')],
    }  # fmt: skip
    svg = render_svg(graph)
    root = parse(svg)
    assert "<script" not in svg
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert {e.tag for e in root.iter()} <= {
        f"{NS}{t}" for t in ("svg", "title", "defs", "marker", "path", "rect", "line", "text", "g")
    }
    # Escaped once: the parsed text is the text given, not "&amp;lt;".
    assert root.get("aria-label") == f'Neighbourhood of {HOSTILE} in r&d"<b>'
    title = root.find(f"{NS}title")
    assert title is not None and title.text == f'Neighbourhood of {HOSTILE} in r&d"<b>'
    groups = node_groups(root)
    assert set(groups) == {f"<k> m.{HOSTILE} (a<b>&c.py:3)", "m.ok"}
    assert label(groups[f"<k> m.{HOSTILE} (a<b>&c.py:3)"]) == '<script>&"'
    assert label(groups["m.ok"]) == "ok & <fine>"
    (line,) = edge_lines(root)
    line_title = line.find(f"{NS}title")
    assert line_title is not None and line_title.text == 'CALLS"><script>x</script>'


def test_a_control_character_in_a_path_still_gives_well_formed_xml() -> None:
    graph = {"nodes": [node("m.f", "match", kind="function", path="odd\x1bname.py")]}
    root = parse(render_svg(graph))
    assert len(node_groups(root)) == 1


# --- edges ----------------------------------------------------------------------------


def test_edges_are_coloured_by_type_with_a_matching_arrow() -> None:
    root = parse(render_svg(GRAPH))
    lines = edge_lines(root)
    assert len(lines) == len(GRAPH["edges"])
    kinds = [line.find(f"{NS}title").text for line in lines]  # type: ignore[union-attr]
    assert kinds == [e["type"] for e in GRAPH["edges"]]
    for line, kind in zip(lines, kinds, strict=True):
        assert line.get("stroke") == COLOURS[str(kind)]
        assert line.get("marker-end") == f"url(#arrow-{kind})"
    assert COLOURS == {"CALLS": "#2563eb", "CONTAINS": "#059669", "INHERITS": "#d97706"}
    markers = {m.get("id"): m for m in root.iter(f"{NS}marker")}
    assert set(markers) == {f"arrow-{kind}" for kind in COLOURS}
    for kind, colour in COLOURS.items():
        arrow = markers[f"arrow-{kind}"].find(f"{NS}path")
        assert arrow is not None and arrow.get("fill") == colour


def test_an_edge_of_another_type_is_grey_without_an_arrow() -> None:
    graph = {"nodes": [node("a", "match"), node("b")], "edges": [edge("a", "b", "IMPORTS")]}
    (line,) = edge_lines(parse(render_svg(graph)))
    assert line.get("stroke") == GREY
    assert line.get("marker-end") is None


def test_an_edge_to_a_node_not_drawn_is_left_out() -> None:
    graph = {
        "nodes": [node("a", "match"), node("b")],
        "edges": [edge("a", "b"), edge("a", "elsewhere"), edge("nowhere", "b")],
    }
    assert len(edge_lines(parse(render_svg(graph)))) == 1


def test_the_legend_names_each_edge_type_in_its_colour() -> None:
    root = parse(render_svg({}))
    legend = [line for line in root.iter(f"{NS}line") if line.find(f"{NS}title") is None]
    assert [line.get("stroke") for line in legend] == list(COLOURS.values())
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert texts == ["calls", "contains", "inherits"]


def test_arrows_stop_at_the_border_of_the_target_box() -> None:
    root = parse(render_svg(GRAPH))
    places = layout(GRAPH["nodes"], GRAPH["edges"])
    for line, e in zip(edge_lines(root), GRAPH["edges"], strict=True):
        sx, sy = places[e["source"]]
        tx, ty = places[e["target"]]
        x1, y1 = float(line.get("x1", "nan")), float(line.get("y1", "nan"))
        x2, y2 = float(line.get("x2", "nan")), float(line.get("y2", "nan"))
        assert (x1, y1) == pytest.approx((sx, sy), abs=0.05)
        dx, dy = abs(x2 - tx), abs(y2 - ty)
        assert dx <= NODE_W / 2 + 0.05 and dy <= NODE_H / 2 + 0.05
        assert math.isclose(dx, NODE_W / 2, abs_tol=0.05) or math.isclose(
            dy, NODE_H / 2, abs_tol=0.05
        )
        # On the segment from the source to the target's centre.
        cross = (x2 - sx) * (ty - sy) - (y2 - sy) * (tx - sx)
        assert abs(cross) <= 0.1 * math.hypot(tx - sx, ty - sy)


# --- nodes ----------------------------------------------------------------------------


def test_matches_and_neighbours_are_drawn_differently() -> None:
    groups = node_groups(parse(render_svg(GRAPH)))
    fills = {}
    for title, group in groups.items():
        rect = group.find(f"{NS}rect")
        assert rect is not None
        assert (rect.get("width"), rect.get("height")) == (str(NODE_W), str(NODE_H))
        fills[title] = rect.get("fill")
    assert fills.pop("function shop.base.helper (shop/base.py:9)") == "#fef3c7"
    assert set(fills.values()) == {"#f3f4f6"}


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("short", "short"),
        ("x" * MAX_LABEL_CHARS, "x" * MAX_LABEL_CHARS),
        ("x" * (MAX_LABEL_CHARS + 1), "x" * (MAX_LABEL_CHARS - 1) + "…"),
        ("a_really_long_function_name_indeed", "a_really_long_functi" + "o…"),
    ],
)
def test_long_names_are_cut_with_an_ellipsis(name: str, shown: str) -> None:
    assert MAX_LABEL_CHARS == 22
    graph = {"nodes": [node(f"pkg.{name}", "match", name=name)], "edges": []}
    (group,) = node_groups(parse(render_svg(graph))).values()
    assert label(group) == shown
    assert len(label(group)) <= MAX_LABEL_CHARS
    title = group.find(f"{NS}title")
    assert title is not None and title.text == f"pkg.{name}", "the hover title is whole"


def test_a_label_falls_back_to_the_qualified_name() -> None:
    graph = {"nodes": [{"qualified_name": "pkg.mod", "role": "match"}], "edges": []}
    (group,) = node_groups(parse(render_svg(graph))).values()
    assert label(group) == "pkg.mod"


# --- layout ---------------------------------------------------------------------------


def test_a_single_match_sits_in_the_centre() -> None:
    places = layout(GRAPH["nodes"], GRAPH["edges"])
    assert places["shop.base.helper"] == (WIDTH / 2, HEIGHT / 2)
    assert set(places) == {n["qualified_name"] for n in GRAPH["nodes"]}


def test_several_matches_share_the_middle_row() -> None:
    nodes = [node(f"m.f{i}", "match") for i in range(5)] + [node("m.other")]
    places = layout(nodes, [])
    row = [places[f"m.f{i}"] for i in range(5)]
    assert all(y == HEIGHT / 2 for _, y in row)
    xs = [x for x, _ in row]
    assert xs == sorted(xs)
    assert sum(xs) / len(xs) == pytest.approx(WIDTH / 2)
    assert all(b - a >= NODE_W for a, b in itertools.pairwise(xs)), "no overlap"
    assert places["m.other"][1] != HEIGHT / 2


def test_callers_and_containers_above_callees_below() -> None:
    places = layout(GRAPH["nodes"], GRAPH["edges"])
    centre = HEIGHT / 2
    for above in ("shop.app.App.run", "shop.base", "shop.base.Base.run", "shop.base.Sub"):
        assert places[above][1] < centre, above
    assert places["shop.base.inner"][1] > centre


def test_every_node_fits_on_the_canvas_without_sharing_a_place() -> None:
    nodes = [node("m.f", "match"), node("m.g", "match")]
    nodes += [node(f"m.caller{i}") for i in range(9)] + [node(f"m.callee{i}") for i in range(9)]
    edges = [edge(f"m.caller{i}", "m.f") for i in range(9)]
    edges += [edge("m.g", f"m.callee{i}") for i in range(9)]
    places = layout(nodes, edges)
    assert len(set(places.values())) == len(nodes)
    for x, y in places.values():
        assert NODE_W / 2 <= x <= WIDTH - NODE_W / 2
        assert NODE_H / 2 <= y <= HEIGHT - NODE_H / 2
    assert layout(nodes, edges) == places
    assert parse(render_svg({"nodes": nodes, "edges": edges})) is not None


def test_a_symbol_graph_from_the_store_renders() -> None:
    sources = {
        "shop/__init__.py": "",
        "shop/base.py": "def helper(x):\n    return x\n\n\ndef run():\n    return helper(1)\n",
    }
    graphs = file_graphs(sources)
    store = InMemoryGraphStore()
    repo = RepoRef("acme", "shop")
    store.write_files(repo, graphs)
    found = symbol_graph(store, repo, "helper")
    root = parse(render_svg(found))
    assert set(node_groups(root)) == {
        "function shop.base.helper (shop/base.py:1)",
        "function shop.base.run (shop/base.py:5)",
        "module shop.base (shop/base.py:1)",
    }
    assert [line.get("stroke") for line in edge_lines(root)] == [
        COLOURS["CONTAINS"],
        COLOURS["CALLS"],
    ]
