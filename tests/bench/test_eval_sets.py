"""bench/eval_sets.py: the held-out manifest is well formed and split by language, a
fetched file is checked against its sha256 before it is unpacked, and the table groups
per language and half."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bench import eval_sets

REQUIRED = {"id", "language", "half", "source", "name", "version", "file", "sha256"}


def test_the_manifest_holds_a_tuning_and_a_reporting_set_per_language() -> None:
    sets = eval_sets.load_sets()
    ids = [e["id"] for e in sets]
    assert len(set(ids)) == len(ids)
    assert len(ids) >= 8
    halves: dict[str, set[str]] = {}
    for entry in sets:
        assert set(entry) >= REQUIRED, entry["id"]
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), entry["id"]
        assert entry["source"] in {"pypi", "npm", "github"}
        if entry["source"] == "github":
            assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), entry["id"]
        family = eval_sets.FAMILY.get(entry["language"], entry["language"])
        halves.setdefault(family, set()).add(entry["half"])
        # Tuned on before, or installed here (a user's evaluation may well hold them).
        assert entry["name"] not in {"requests", "attrs"}
    assert len(halves) >= 4
    assert all(h == {"tuning", "reporting"} for h in halves.values()), halves


def _tarball(tmp: Path, top: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"package x\n"
        member = tarfile.TarInfo(f"{top}/x.go")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def _entry(data: bytes, **extra: Any) -> dict[str, Any]:
    return {"id": "x-1.0", "source": "pypi", "name": "x", "version": "1.0", "file": "x.tgz",
            "sha256": hashlib.sha256(data).hexdigest(), **extra}  # fmt: skip


def test_fetch_checks_the_sha256_then_unpacks_without_the_top_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eval_sets, "CORPORA", tmp_path)
    data = _tarball(tmp_path, "x-1.0-top")
    (tmp_path / "x.tgz").write_bytes(data)
    folder = eval_sets.fetch(_entry(data), mirror=None)
    assert folder == tmp_path / "x-1.0"
    assert (folder / "x.go").read_bytes() == b"package x\n"


def test_fetch_refuses_a_file_whose_sha256_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eval_sets, "CORPORA", tmp_path)
    data = _tarball(tmp_path, "top")
    (tmp_path / "x.tgz").write_bytes(data + b"tampered")
    with pytest.raises(SystemExit, match="sha256"):
        eval_sets.fetch(_entry(data), mirror=None)
    assert not (tmp_path / "x-1.0").exists()


def _report(name: str, queries: int, r10: float) -> dict[str, Any]:
    def figures() -> dict[str, float]:
        return {"recall@10": r10, "mrr@10": r10 / 2, "mean_lines": 20.0}

    return {"name": f"eval-{name}", "queries": queries,
            "modes": {m: figures() for m in ("vector", "lexical", "hybrid")}}  # fmt: skip


def test_table_weights_a_language_by_queries_and_names_what_was_not_run(tmp_path: Path) -> None:
    sets = [
        {"id": "a", "language": "typescript", "half": "tuning"},
        {"id": "b", "language": "javascript", "half": "tuning"},
        {"id": "c", "language": "go", "half": "reporting"},
    ]
    (tmp_path / "a.json").write_text(json.dumps(_report("a", 100, 0.9)))
    (tmp_path / "b.json").write_text(json.dumps(_report("b", 300, 0.5)))
    text = eval_sets.table(sets, tmp_path)
    assert "| tuning | ts/js | b, a | 400 | 0.600 | 0.300 | 20.0 | 0.600 |" in text
    assert text.endswith("Not run: c.")


def test_fetch_refuses_an_archive_entry_that_climbs_out_even_with_a_matching_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A compromised registry entry pinned by mistake: tarfile's "data" filter refuses it.
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    monkeypatch.setattr(eval_sets, "CORPORA", corpora)
    data = _tarball(tmp_path, "top/../../escaped")
    (corpora / "x.tgz").write_bytes(data)
    with pytest.raises(tarfile.OutsideDestinationError):
        eval_sets.fetch(_entry(data), mirror=None)
    assert not (tmp_path / "escaped").exists()
    assert not (corpora / "x-1.0").exists()


def test_the_margin_of_hybrid_over_the_better_single_retriever_comes_with_an_interval(
    tmp_path: Path,
) -> None:
    ranks = [{"hybrid": 1, "vector": 2, "lexical": None}] * 30
    ranks += [{"hybrid": None, "vector": 1, "lexical": 1}] * 10
    report = _report("a", 40, 0.5)
    report["modes"]["hybrid"]["mrr@10"] = 0.75
    report["modes"]["vector"]["mrr@10"] = 0.625
    report["modes"]["lexical"]["mrr@10"] = 0.25
    report["per_query"] = [{"rank": r} for r in ranks]
    (tmp_path / "a.json").write_text(json.dumps(report))
    text = eval_sets.table([{"id": "a", "language": "go", "half": "reporting"}], tmp_path)
    line = next(row for row in text.splitlines() if row.endswith("vs vector |"))
    low, high = (float(x) for x in re.findall(r"[+-]\d\.\d{3}", line)[1:])
    assert line.startswith("| reporting | go | a | +0.125 [")
    assert low < 0.125 < high


def _ranked(name: str, ranks: list[int | None], texts: list[str]) -> dict[str, object]:
    mrr = sum(1 / r for r in ranks if r) / len(ranks)
    recall = sum(1 for r in ranks if r) / len(ranks)
    report = _report(name, len(ranks), recall)
    report["modes"]["hybrid"]["mrr@10"] = mrr  # type: ignore[index]
    report["per_query"] = [
        {"text": t, "rank": {"hybrid": r}} for t, r in zip(texts, ranks, strict=True)
    ]
    return report


def test_compare_puts_before_and_after_side_by_side_per_language_and_pooled(
    tmp_path: Path,
) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    texts = [f"q{i}" for i in range(20)]
    (before / "a.json").write_text(json.dumps(_ranked("a", [2] * 20, texts)))
    (after / "a.json").write_text(json.dumps(_ranked("a", [1] * 20, texts)))
    sets = [{"id": "a", "language": "go", "half": "reporting"}]
    text = eval_sets.compare(sets, after, before)
    go = next(row for row in text.splitlines() if "| go |" in row)
    assert go.startswith("| reporting | go | 20 | 1.000 | 1.000 | 0.500 | 1.000 | 20.0 | 20.0 |")
    assert go.endswith("+0.500 [+0.500, +0.500] |")
    assert "| reporting | pooled | 20 |" in text


def test_compare_refuses_runs_of_different_queries(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    (before / "a.json").write_text(json.dumps(_ranked("a", [1, 2], ["q0", "q1"])))
    (after / "a.json").write_text(json.dumps(_ranked("a", [1, 2], ["q0", "other"])))
    with pytest.raises(SystemExit, match="different queries"):
        eval_sets.compare([{"id": "a", "language": "go", "half": "tuning"}], after, before)


def test_fetch_into_another_folder_for_the_training_corpus(tmp_path: Path) -> None:
    data = _tarball(tmp_path, "x-1.0-top")
    (tmp_path / "x.tgz").write_bytes(data)
    folder = eval_sets.fetch(_entry(data), mirror=None, corpora=tmp_path)
    assert (folder / "x.go").read_bytes() == b"package x\n"


def test_the_training_corpus_is_pinned_and_outside_every_evaluation_set() -> None:
    train = eval_sets.load_sets(eval_sets.HERE / "train_sets.toml")
    held_out = eval_sets.load_sets()
    assert {e["name"] for e in train}.isdisjoint({e["name"] for e in held_out})
    assert {e["id"] for e in train}.isdisjoint({e["id"] for e in held_out})
    for entry in train:
        assert len(entry["sha256"]) == 64 and entry["version"], entry["id"]
        assert entry["source"] in {"pypi", "npm", "github"}, entry["id"]
        assert entry["source"] != "github" or len(entry["commit"]) == 40, entry["id"]
    languages = {e["language"] for e in train}
    assert {"python", "go", "java", "rust", "javascript", "typescript"} <= languages
