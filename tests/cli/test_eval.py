"""`quarry eval`: the set is indexed through the API, every query searched in each mode,
and the figures printed; a failed job, a tree without docstrings and API errors exit non-zero.

The API is a fake client with canned search answers (the search endpoint has its own tests).
"""

from __future__ import annotations

import json
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import cli.eval
from cli.evaluation import EvalQuery
from pipeline.errors import InvalidInputError, StoreUnavailableError

MOD = '''"""Module docstring."""


def alpha(x):
    """Add one to the given number."""
    return x + 1


def beta(x):
    """Multiply the number by two."""
    return x * 2


def gamma(x):
    """Negate the given number please."""
    return -x
'''
SPANS = {"alpha": (4, 6), "beta": (9, 11), "gamma": (14, 16)}
TEXTS = {
    "Add one to the given number.": "alpha",
    "Multiply the number by two.": "beta",
    "Negate the given number please.": "gamma",
}
PATH = "pkg/mod.py"


def _hit(name: str, path: str = PATH) -> dict[str, Any]:
    start, end = SPANS[name]
    return {"path": path, "start_line": start, "end_line": end, "symbol": name,
            "kind": "function", "language": "python", "score": 1.0, "snippet": "",
            "retrievers": ["vector"]}  # fmt: skip


def _other(name: str) -> str:
    return {"alpha": "beta", "beta": "gamma", "gamma": "alpha"}[name]


def _answer(mode: str, target: str) -> list[dict[str, Any]]:
    """vector: target first; lexical: a miss, then the target; hybrid: first except gamma."""
    if mode == "vector":
        return [_hit(target), _hit(_other(target))]
    if mode == "lexical":
        return [_hit(_other(target)), _hit(target)]
    if target == "gamma":
        return [_hit(target, "elsewhere.py")]
    return [_hit(target)]


class FakeClient:
    def __init__(self, final_status: str = "done") -> None:
        self.final_status = final_status
        self.jobs: list[dict[str, Any]] = []
        self.searches: list[tuple[str, str | None, int, str]] = []
        self.failures: dict[str, Exception] = {}
        self._lock = threading.Lock()
        self.uploaded: dict[str, bytes] = {}

    def create_job(self, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.jobs.append(body)
        return {"job_id": "job-1"}

    def upload_archive(self, path: Path, params: dict[str, str]) -> dict[str, Any]:
        self.jobs.append({"archive": path, **params})
        with tarfile.open(path, "r:gz") as tar:
            self.uploaded = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
        return {"job_id": "job-1"}

    def job(self, job_id: str) -> dict[str, Any]:
        files = {"total": 1, "todo": 1, "chunked": 1, "written": 1, "failed": 0, "skipped": 0,
                 "deleted": 0}  # fmt: skip
        return {"job_id": job_id, "status": self.final_status, "stage": "write",
                "repo": self.jobs[-1]["repo"], "commit": None, "files": files,
                "chunks": {"total": 3, "embedded": 3, "cached": 0}, "eta_s": None,
                "message": "the graph was unreachable" if self.final_status != "done" else None,
                "errors": [], "waiting_on": []}  # fmt: skip

    def search(
        self, q: str, *, repo: str | None = None, k: int = 10, mode: str = "hybrid"
    ) -> dict[str, Any]:
        with self._lock:
            self.searches.append((q, repo, k, mode))
            failure = self.failures.pop(mode, None)
        if failure is not None:
            raise failure
        return {"query": q, "mode": mode, "results": _answer(mode, TEXTS[q])[:k]}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "demo-1.0"
    (root / "pkg").mkdir(parents=True)
    (root / PATH).write_text(MOD, encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests/test_mod.py").write_text('def t():\n    """A test function here."""\n')
    return root


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeClient:
    fake = FakeClient()
    monkeypatch.setattr(cli.eval, "api_client", lambda: fake)
    monkeypatch.setattr(cli.eval, "settings", lambda: SimpleNamespace(data_dir=tmp_path / "data"))
    monkeypatch.setattr(cli.eval, "MAX_RETRY_WAIT_S", 0.0)
    return fake


def run(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    cli.eval.register(app)

    @app.callback()
    def main() -> None:
        """Quarry."""

    result = CliRunner().invoke(app, ["eval", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.timeout(60)
def test_json_reports_each_mode_from_the_canned_results(repo: Path, client: FakeClient) -> None:
    code, out, err = run(str(repo), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["repo"] == str(repo.resolve())
    assert report["name"] == "eval-demo-1.0"
    assert report["queries"] == 3
    modes = report["modes"]
    assert modes["vector"] == pytest.approx(
        {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr@10": 1.0, "mean_lines": 3.0}
    )
    assert modes["lexical"] == pytest.approx(
        {"recall@1": 0.0, "recall@5": 1.0, "recall@10": 1.0, "mrr@10": 0.5, "mean_lines": 3.0}
    )
    assert modes["hybrid"] == pytest.approx(
        {
            "recall@1": 2 / 3,
            "recall@5": 2 / 3,
            "recall@10": 2 / 3,
            "mrr@10": 2 / 3,
            "mean_lines": 3.0,
        }
    )
    assert report["hybrid_beats_single"] is False
    assert report["languages"] == {"python": {"queries": 3, "modes": modes}}
    assert report["keep_names"] is False
    ranks = {q["name"]: q["rank"] for q in report["per_query"]}
    assert ranks["alpha"] == {"vector": 1, "lexical": 2, "hybrid": 1}
    assert ranks["gamma"] == {"vector": 1, "lexical": 2, "hybrid": None}  # another file


def test_report_splits_the_figures_per_language() -> None:
    queries = [
        EvalQuery("Parse one header line.", "h.go", 1, 5, "parse", "go"),
        EvalQuery("Format one header line.", "h.ts", 1, 5, "format", "typescript"),
    ]
    hits = {mode: [[("h.go", 2, 3)], [("x.ts", 1, 5)]] for mode in cli.eval.MODES}
    report = cli.eval.build_report("/r", "eval-r", queries, hits)
    assert report["modes"]["hybrid"]["recall@10"] == 0.5
    assert report["languages"]["go"]["modes"]["hybrid"]["recall@10"] == 1.0
    assert report["languages"]["typescript"]["modes"]["hybrid"]["recall@10"] == 0.0
    assert [q["rank"]["lexical"] for q in report["per_query"]] == [1, None]


@pytest.mark.timeout(60)
def test_the_blanked_copy_is_indexed_under_the_name_and_searched_in_every_mode(
    repo: Path, client: FakeClient, tmp_path: Path
) -> None:
    copy = tmp_path / "data/eval/mine.tar.gz"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"a stale archive of an earlier run")
    code, _, err = run(str(repo), "--json", "--name", "mine", "--k", "1")
    assert code == 0, err
    # Uploaded, not named by path: the workers may run on other hosts.
    assert client.jobs == [{"archive": copy, "repo": "mine"}]
    # Under one top folder, which the API strips: the indexed paths are the set's paths,
    # even when every file of the set sits in one folder (a PATH of src/pkg/mod.py).
    assert sorted(client.uploaded) == [f"mine/{PATH}"]
    blanked = client.uploaded[f"mine/{PATH}"].decode("utf-8")
    assert blanked.count("\n") == MOD.count("\n")
    assert "Add one" not in blanked and "Module docstring" not in blanked
    assert sorted(client.searches) == sorted(
        (text, "mine", 1, mode) for text in TEXTS for mode in ("vector", "lexical", "hybrid")
    )


@pytest.mark.timeout(60)
def test_table_lists_the_modes_and_figures(repo: Path, client: FakeClient) -> None:
    code, out, err = run(str(repo))
    assert code == 0, err
    for expected in ("vector", "lexical", "hybrid", "1.000", "0.500", "0.667", "3.0"):
        assert expected in out
    assert "hybrid beats vector and lexical on MRR@10: no" in out
    assert "1 files, 3 queries (3 python;" in err


@pytest.mark.timeout(60)
def test_a_failed_index_job_exits_1_naming_the_job(repo: Path, client: FakeClient) -> None:
    client.final_status = "failed"
    code, out, err = run(str(repo), "--json")
    assert code == 1
    assert "the index job job-1 of eval-demo-1.0 ended failed: the graph was unreachable" in err
    assert out == ""
    assert client.searches == []


@pytest.mark.timeout(60)
def test_a_tree_without_usable_docstrings_exits_2_naming_the_path(
    tmp_path: Path, client: FakeClient
) -> None:
    root = tmp_path / "bare"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/a.py").write_text('def f():\n    """Too short."""\n')
    code, _, err = run(str(root))
    assert code == 2
    assert f"{root}: no usable doc comments" in err
    assert client.jobs == []


@pytest.mark.timeout(60)
def test_a_missing_folder_and_a_bad_name_exit_2(
    repo: Path, tmp_path: Path, client: FakeClient
) -> None:
    code, _, err = run(str(tmp_path / "nowhere"))
    assert code == 2
    assert "nowhere: not a folder" in err
    code, _, err = run(str(repo), "--name", "../escape")
    assert code == 2
    assert "repository name '../escape'" in err
    assert client.jobs == []


@pytest.mark.timeout(60)
def test_a_transient_search_failure_is_tried_again(repo: Path, client: FakeClient) -> None:
    client.failures["hybrid"] = StoreUnavailableError("api", "answered 503")
    code, out, err = run(str(repo), "--json")
    assert code == 0, err
    assert len(client.searches) == 10
    assert json.loads(out)["modes"]["hybrid"]["recall@1"] == pytest.approx(2 / 3)


@pytest.mark.timeout(60)
def test_a_refused_search_exits_2_with_the_servers_reason(repo: Path, client: FakeClient) -> None:
    client.failures["lexical"] = InvalidInputError("q: too long")
    code, out, err = run(str(repo), "--json")
    assert code == 2
    assert "quarry: error: q: too long" in err
    assert out == ""
