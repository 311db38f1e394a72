"""Search end to end on the session stack: the real pathspec package indexed by the real
workers, then searched through the API (the query embedded by the API's own ONNX model)
and the CLI; graph neighbourhoods as JSON and SVG; tenants; bad input."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from typing import Any
from xml.etree import ElementTree

import httpx
import psycopg
import pytest

from config.endpoints import Endpoints
from config.settings import child_environment
from devstack.stack import Stack
from pipeline.adapters.postgres.token_store import PgTokenStore
from tests.stackutil import run_quarry
from tests.workers.jobs_api import corpus, enqueue, wait

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def indexed(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The pathspec package indexed once for this module; its repository name."""
    root = tmp_path_factory.mktemp("search") / "pathspec"
    shutil.copytree(corpus(), root, ignore=shutil.ignore_patterns("__pycache__"))
    repo = f"search-{uuid.uuid4().hex[:8]}"
    status = wait(api, enqueue(api, source=str(root), repo=repo))
    assert status["status"] == "done", status
    return repo


def search(api: httpx.Client, **params: Any) -> httpx.Response:
    return api.get("/v1/search", params=params)


def test_hybrid_search_finds_the_function_and_says_which_retrievers_found_it(
    api: httpx.Client, indexed: str
) -> None:
    response = search(api, q="match_file", repo=indexed, k=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["query"], body["mode"], body["k"]) == ("match_file", "hybrid", 10)
    results = body["results"]
    assert 0 < len(results) <= 10
    top = results[0]
    assert set(top) >= {"path", "start_line", "end_line", "symbol", "kind", "language", "score",
                        "snippet", "retrievers", "repo"}  # fmt: skip
    assert top["symbol"].endswith("match_file"), top  # util.match_file or PathSpec.match_file
    assert {"util.py", "pathspec.py"} <= {r["path"] for r in results}
    assert "lexical" in top["retrievers"] and top["language"] == "python"
    assert "def match_file" in top["snippet"]
    assert 1 <= top["start_line"] <= top["end_line"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_a_question_in_words_finds_code_by_meaning(api: httpx.Client, indexed: str) -> None:
    vector = search(api, q="check whether a file path matches the patterns", repo=indexed,
                    k=10, mode="vector").json()["results"]  # fmt: skip
    assert vector and all(r["retrievers"] == ["vector"] for r in vector)
    assert any("match" in r["symbol"] for r in vector[:5]), [r["symbol"] for r in vector]
    lexical = search(api, q="patterns", repo=indexed, mode="lexical").json()["results"]
    assert lexical and all(r["retrievers"] == ["lexical"] for r in lexical)


def test_filters_narrow_the_results(api: httpx.Client, indexed: str) -> None:
    only_gitignore = search(api, q="pattern", repo=indexed, path="gitignore.py", k=20).json()
    assert {r["path"] for r in only_gitignore["results"]} == {"gitignore.py"}
    folder = search(api, q="pattern", repo=indexed, path="patterns", k=20).json()["results"]
    assert folder and all(r["path"].startswith("patterns/") for r in folder)
    classes = search(api, q="pattern", repo=indexed, kind="class", k=20).json()["results"]
    assert classes and all(r["kind"] == "class" for r in classes)
    assert search(api, q="pattern", repo=indexed, lang="rust").json()["results"] == []


def test_expansion_adds_the_graph_neighbourhood(api: httpx.Client, indexed: str) -> None:
    body = search(api, q="match_file", repo=indexed, k=3, expand="callers,callees,container")
    top = body.json()["results"][0]
    hood = top["neighbours"]
    assert set(hood) == {"callers", "callees", "container"}
    assert hood["container"]["qualified_name"] == top["symbol"].rsplit(".", 1)[0]
    assert all({"qualified_name", "path", "start_line"} <= set(n) for n in hood["callees"])


def test_graph_symbol_as_json_and_svg(api: httpx.Client, indexed: str) -> None:
    found = api.get("/v1/graph/symbol", params={"repo": indexed, "name": "match_file"})
    assert found.status_code == 200, found.text
    graph = found.json()
    matches = [n for n in graph["nodes"] if n["role"] == "match"]
    assert matches and all(n["name"] == "match_file" for n in matches)
    names = {n["qualified_name"] for n in graph["nodes"]}
    assert graph["edges"] and all(e["source"] in names and e["target"] in names
                                  for e in graph["edges"])  # fmt: skip
    assert {e["type"] for e in graph["edges"]} <= {"CALLS", "CONTAINS", "INHERITS"}
    svg = api.get("/v1/graph/symbol", params={"repo": indexed, "name": "match_file",
                                              "format": "svg"})  # fmt: skip
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(svg.text)
    assert root.tag.endswith("svg")
    assert "match_file" in svg.text
    missing = api.get("/v1/graph/symbol", params={"repo": indexed, "name": "no_such_thing"})
    assert missing.status_code == 404 and "no_such_thing" in missing.json()["detail"]
    unknown = api.get("/v1/graph/symbol", params={"repo": "nope-x", "name": "match_file"})
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"q": ""}, 422, "q"),
        ({"q": "   "}, 422, "q"),
        ({"q": "x" * 10_000}, 422, "q"),
        ({"q": "x" * 20_000}, 422, "q"),
        ({"q": "a", "k": 0}, 422, "k"),
        ({"q": "a", "k": -3}, 422, "k"),
        ({"q": "a", "k": 1001}, 422, "k"),
        ({"q": "a", "k": "ten"}, 422, "k"),
        ({"q": "a", "mode": "fuzzy"}, 422, "mode"),
        ({"q": "a", "expand": "friends"}, 422, "expand"),
        ({"q": "a", "kind": "variable"}, 422, "kind"),
        ({"q": "a", "lang": "Py thon"}, 422, "lang"),
        ({"q": "a", "lang": "klingon"}, 422, "lang"),
        ({"q": "a", "repo": "no-such-repo"}, 404, "no-such-repo"),
    ],
)
def test_bad_input_is_a_4xx_that_names_it(
    api: httpx.Client, params: dict[str, Any], status: int, named: str
) -> None:
    response = search(api, **params)
    assert response.status_code == status, response.text
    assert named in json.dumps(response.json())


@pytest.mark.parametrize(
    "q",
    [
        "'; DROP TABLE chunks; --",
        "a & b | !c <-> d:* (e)",
        "\\' \\\\ %s %(x)s $1",
        "match_file' OR '1'='1",
        "::: &&& ||| !!!",
        "日本語 ünïcödé 🎉",
    ],
)
def test_query_syntax_and_sql_metacharacters_are_only_text(
    api: httpx.Client, indexed: str, q: str
) -> None:
    for mode in ("hybrid", "lexical", "vector"):
        response = search(api, q=q, repo=indexed, mode=mode)
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["results"], list)
    assert search(api, q="match_file", repo=indexed).json()["results"]  # nothing was dropped


def test_a_tenant_never_sees_another_tenants_code(
    api: httpx.Client, indexed: str, endpoints: Endpoints
) -> None:
    with PgTokenStore(endpoints.postgres_dsn) as tokens:
        token = tokens.create(f"other-{uuid.uuid4().hex[:6]}")
    other = {"Authorization": f"Bearer {token}"}
    everything = api.get("/v1/search", params={"q": "match_file"}, headers=other)
    assert everything.status_code == 200 and everything.json()["results"] == []
    named = api.get("/v1/search", params={"q": "match_file", "repo": indexed}, headers=other)
    assert named.status_code == 404
    graph = api.get("/v1/graph/symbol", params={"repo": indexed, "name": "match_file"},
                    headers=other)  # fmt: skip
    assert graph.status_code == 404
    anonymous = httpx.get(f"{endpoints.api_url}/v1/search", params={"q": "match_file"})
    assert anonymous.status_code == 401


def _waiting_rows(endpoints: Endpoints, repo: str) -> int:
    with psycopg.connect(endpoints.postgres_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM chunks c JOIN repositories r ON r.id = c.repository_id"
            " WHERE r.name = %s AND NOT c.indexed",
            (repo,),
        ).fetchone()
    return int(row[0]) if row else 0


def _until_indexed(endpoints: Endpoints, repo: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _waiting_rows(endpoints, repo):
        assert time.monotonic() < deadline, "rows still wait for the vector index"
        time.sleep(0.2)


def test_a_jobs_rows_reach_the_vector_index_after_it_and_search_answers_the_same(
    api: httpx.Client, indexed: str, endpoints: Endpoints
) -> None:
    """Migration 0021 on the real workers: the commit's index task adds the job's rows;
    rows that wait again (as if that task were lost) are searched exactly meanwhile,
    and the sweep (every second here) starts the task that adds them."""
    _until_indexed(endpoints, indexed)
    question = {"q": "check whether a file path matches the patterns", "repo": indexed,
                "k": 10, "mode": "vector"}  # fmt: skip
    before = [(r["path"], r["start_line"]) for r in search(api, **question).json()["results"]]
    assert before
    with psycopg.connect(endpoints.postgres_dsn) as conn:
        conn.execute(
            "UPDATE chunks c SET indexed = false FROM repositories r"
            " WHERE r.id = c.repository_id AND r.name = %s AND c.embedding IS NOT NULL",
            (indexed,),
        )
    assert _waiting_rows(endpoints, indexed) > 0
    waiting = [(r["path"], r["start_line"]) for r in search(api, **question).json()["results"]]
    _until_indexed(endpoints, indexed)
    after = [(r["path"], r["start_line"]) for r in search(api, **question).json()["results"]]
    assert waiting == before == after


def test_the_cli_prints_results_and_the_same_json(
    api: httpx.Client, indexed: str, stack: Stack
) -> None:
    env = {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}
    run = run_quarry("search", "match_file", "--repo", indexed, "--k", "3", "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == search(api, q="match_file", repo=indexed, k=3).json()
    human = run_quarry("search", "match_file", "--repo", indexed, "-k", "2", "--expand",
                       "callers", env=env)  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert "util.py" in human.stdout and "def match_file" in human.stdout
    assert "callers:" in human.stdout
    none = run_quarry("search", "zzqqxxyy", "--repo", indexed, "--mode", "lexical", env=env)
    assert none.returncode == 1 and "no results" in none.stderr
    bad = run_quarry("search", "x", "--repo", "no-such-repo", env=env)
    assert bad.returncode == 2 and "no-such-repo" in bad.stderr
