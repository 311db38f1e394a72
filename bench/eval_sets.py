"""The held-out evaluation sets of ``quarry eval`` (issue 21): fetch them, run them, table them.

``bench/eval_sets.toml`` lists each set (id, language, half, where it comes from, the
sha256 of what was fetched). Three steps:

    python -m bench.eval_sets fetch [--mirror DIR] [--manifest TOML] [--corpora DIR] [ID ...]
        pypi: ``pip download --no-deps --no-binary :all: NAME==VERSION``; npm: ``npm pack
        NAME@VERSION``; github: ``git archive`` of the pinned commit, from a local clone
        (``--mirror DIR`` holding ``owner+name/repo`` bare clones) or a fresh ``git clone
        --bare``. Each file's sha256 must match the manifest, then it is unpacked into
        ``bench/corpora/<id>/`` (its single top folder removed). ``--manifest
        bench/train_sets.toml --corpora DIR`` fetches ``quarry model train``'s corpus.
    python -m bench.eval_sets run [--half tuning|reporting] [ID ...]
        ``nice -n 10 quarry eval bench/corpora/<id> --name eval-<id> --json`` per set (a
        stack must be up: ``quarry dev up``), the JSON kept in
        ``bench/corpora/results/<id>.json``.
    python -m bench.eval_sets table [--results DIR]
        Markdown: per repository, then per language and half (query-weighted means).
    python -m bench.eval_sets compare --baseline DIR [--results DIR] [--mode MODE] [--per-set]
        Markdown: hybrid (or MODE) before (``--baseline``) and after, per language and half
        and pooled, with a paired bootstrap 95 % interval of the MRR@10 difference;
        ``--per-set``: then hybrid R@10 and MRR@10 set by set, in points, each with its
        interval.

Must not import: torch, drivers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from cli.evaluation import bootstrap_mrr_diff

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "eval_sets.toml"
CORPORA = HERE / "corpora"
RESULTS = CORPORA / "results"
MODES = ("hybrid", "vector", "lexical")
BOOTSTRAP_SAMPLES = 2000
FAMILY = {"typescript": "ts/js", "javascript": "ts/js"}


def load_sets(manifest: Path = MANIFEST) -> list[dict[str, Any]]:
    with manifest.open("rb") as f:
        sets: list[dict[str, Any]] = tomllib.load(f)["set"]
    return sets


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(entry: dict[str, Any], dest: Path, mirror: Path | None) -> None:
    source, name, version = entry["source"], entry["name"], entry["version"]
    if source == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*cmd, f"{name}=={version}", "-d", str(dest.parent)], check=True)
    elif source == "npm":
        subprocess.run(["npm", "pack", f"{name}@{version}"], cwd=dest.parent, check=True)
    elif source == "github":
        local = None if mirror is None else mirror / name.replace("/", "+") / "repo"
        with tempfile.TemporaryDirectory() as tmp:
            if local is None or not local.is_dir():
                local = Path(tmp) / "repo.git"
                url = f"https://github.com/{name}.git"
                subprocess.run(["git", "clone", "--bare", "-q", url, str(local)], check=True)
            archive = ["git", "-C", str(local), "archive", "--format=tar"]
            archive += [f"--prefix={entry['id']}/", entry["commit"], *entry.get("paths", [])]
            with dest.open("wb") as out:
                subprocess.run(archive, stdout=out, check=True)
    else:
        raise SystemExit(f"{entry['id']}: unknown source {source!r}")


def fetch(entry: dict[str, Any], mirror: Path | None, corpora: Path | None = None) -> Path:
    """Download into ``corpora`` (default ``bench/corpora``) unless there, check the
    sha256, unpack; the unpacked folder ``corpora/<id>``."""
    corpora = corpora or CORPORA
    corpora.mkdir(parents=True, exist_ok=True)
    dest = corpora / entry["file"]
    if not dest.exists():
        _download(entry, dest, mirror)
    got = sha256(dest)
    if got != entry["sha256"]:
        raise SystemExit(f"{dest}: sha256 {got}, the manifest says {entry['sha256']}")
    folder: Path = corpora / entry["id"]
    if folder.exists():
        return folder
    with tempfile.TemporaryDirectory(dir=corpora) as tmp, tarfile.open(dest) as tar:
        tar.extractall(tmp, filter="data")
        tops = list(Path(tmp).iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            raise SystemExit(f"{dest}: expected one top folder, found {len(tops)} entries")
        shutil.move(tops[0], folder)
    return folder


def run(entry: dict[str, Any], quarry: list[str]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{entry['id']}.json"
    cmd = ["nice", "-n", "10", *quarry, "eval", str(CORPORA / entry["id"])]
    cmd += ["--name", f"eval-{entry['id']}", "--json"]
    with out.open("w") as f:
        subprocess.run(cmd, stdout=f, check=True)
    return out


def table(sets: list[dict[str, Any]], results: Path) -> str:
    """Per repository, then per language family and half (means weighted by queries)."""
    head = "| half | language | repository | queries |"
    head += "".join(f" {m} R@10 | {m} MRR@10 | {m} lines |" for m in MODES)
    rows = [head, "|" + "---|" * 3 + "---:|" * (3 * len(MODES) + 1)]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    missing = []
    for entry in sorted(sets, key=lambda e: (e["half"] != "reporting", e["language"])):
        path = results / f"{entry['id']}.json"
        if not path.exists() or not path.read_text().strip():
            missing.append(entry["id"])
            continue
        report = json.loads(path.read_text())
        family = FAMILY.get(entry["language"], entry["language"])
        groups.setdefault((entry["half"], family), []).append(report)
        rows.append(_row(entry["half"], entry["language"], entry["id"], [report]))
    rows.append("")
    rows.append(head.replace("repository", "repositories"))
    rows.append(rows[1])
    for (half, family), reports in sorted(
        groups.items(), key=lambda g: (g[0][0] != "reporting", g[0][1])
    ):
        names = ", ".join(r["name"].removeprefix("eval-") for r in reports)
        rows.append(_row(half, family, names, reports))
    if missing:
        rows.append("")
        rows.append(f"Not run: {', '.join(missing)}.")
    margins = [_margin(g, r) for g, reports in sorted(groups.items()) for r in reports]
    if any(margins):
        rows += ["", "| half | language | repository | hybrid MRR@10 - best single (95 % CI) |"]
        rows.append("|---|---|---|---|")
        rows += [m for m in margins if m]
    return "\n".join(rows)


def compare(sets: list[dict[str, Any]], results: Path, baseline: Path, mode: str = "hybrid") -> str:
    """``mode``'s figures of ``results`` against ``baseline`` (two folders of ``run`` JSON)
    per language family and half, then pooled per half: R@10, MRR@10 and mean lines of
    each, and the MRR@10 difference with a paired bootstrap 95 % interval over the
    queries (the same queries in both: checked)."""
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for entry in sets:
        new_path, old_path = results / f"{entry['id']}.json", baseline / f"{entry['id']}.json"
        if not _ran(new_path) or not _ran(old_path):
            continue
        new, old = json.loads(new_path.read_text()), json.loads(old_path.read_text())
        if [q["text"] for q in new["per_query"]] != [q["text"] for q in old["per_query"]]:
            raise SystemExit(f"{entry['id']}: the two runs asked different queries")
        family = FAMILY.get(entry["language"], entry["language"])
        groups.setdefault((entry["half"], family), []).append((new, old))
        groups.setdefault((entry["half"], "pooled"), []).append((new, old))
    head = (
        "| half | language | queries | R@10 before | R@10 after | MRR@10 before |"
        " MRR@10 after | lines before | lines after | MRR@10 after - before (95 % CI) |"
    )
    rows = [head, "|---|---|" + "---:|" * 7 + "---|"]
    for (half, family), pairs in sorted(
        groups.items(), key=lambda g: (g[0][0] != "reporting", g[0][1] == "pooled", g[0][1])
    ):
        news, olds = [n for n, _ in pairs], [o for _, o in pairs]
        n = sum(r["queries"] for r in news)

        def mean(reports: list[dict[str, Any]], key: str, n: int = n) -> float:
            return float(sum(r["modes"][mode][key] * r["queries"] for r in reports) / n)

        after = [q["rank"][mode] for r in news for q in r["per_query"]]
        before = [q["rank"][mode] for r in olds for q in r["per_query"]]
        low, high = bootstrap_mrr_diff(after, before, samples=BOOTSTRAP_SAMPLES)
        diff = mean(news, "mrr@10") - mean(olds, "mrr@10")
        cells = [half, family, str(n)]
        for key, form in (("recall@10", ".3f"), ("mrr@10", ".3f"), ("mean_lines", ".1f")):
            cells += [f"{mean(olds, key):{form}}", f"{mean(news, key):{form}}"]
        cells.append(f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def compare_per_set(sets: list[dict[str, Any]], results: Path, baseline: Path) -> str:
    """Hybrid R@10 and MRR@10 of ``results`` against ``baseline`` set by set, each
    difference in points with a paired bootstrap 95 % interval over the set's queries
    (R@10's from hit@10 read as rank 1 or none), and whether both stay within 1 point."""
    head = (
        "| half | set | queries | R@10 before | R@10 after | ΔR@10 pts (95 % CI) |"
        " MRR@10 before | MRR@10 after | ΔMRR@10 pts (95 % CI) | within 1 pt |"
    )
    rows = [head, "|---|---|" + "---:|" * 7 + "---|"]
    for entry in sorted(sets, key=lambda e: (e["half"] != "reporting", e["id"])):
        new_path, old_path = results / f"{entry['id']}.json", baseline / f"{entry['id']}.json"
        if not _ran(new_path) or not _ran(old_path):
            continue
        new, old = json.loads(new_path.read_text()), json.loads(old_path.read_text())
        if [q["text"] for q in new["per_query"]] != [q["text"] for q in old["per_query"]]:
            raise SystemExit(f"{entry['id']}: the two runs asked different queries")
        after = [q["rank"]["hybrid"] for q in new["per_query"]]
        before = [q["rank"]["hybrid"] for q in old["per_query"]]
        cells = [entry["half"], entry["id"], str(new["queries"])]
        within = True
        for key, a, b in (
            ("recall@10", _hits(after), _hits(before)),
            ("mrr@10", after, before),
        ):
            was, now = old["modes"]["hybrid"][key], new["modes"]["hybrid"][key]
            low, high = bootstrap_mrr_diff(a, b, samples=BOOTSTRAP_SAMPLES)
            diff = (now - was) * 100
            within = within and diff >= -1.0
            cells += [f"{was:.3f}", f"{now:.3f}"]
            cells.append(f"{diff:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]")
        cells.append("yes" if within else "**no**")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _ran(path: Path) -> bool:
    """Whether ``path`` holds a run's JSON (a set still running has an empty file)."""
    return path.exists() and bool(path.read_text().strip())


def _hits(ranks: list[int | None]) -> list[int | None]:
    """hit@10 as a rank (1 or none), so that the MRR bootstrap gives R@10's interval."""
    return [1 if r is not None and r <= 10 else None for r in ranks]


def _margin(group: tuple[str, str], report: dict[str, Any]) -> str:
    """Hybrid's MRR@10 minus the better single retriever's, with a paired bootstrap 95 %
    interval over the queries (from ``per_query``; empty without it)."""
    per_query = report.get("per_query")
    if not per_query:
        return ""
    best = max(("vector", "lexical"), key=lambda m: report["modes"][m]["mrr@10"])
    hybrid = [q["rank"]["hybrid"] for q in per_query]
    single = [q["rank"][best] for q in per_query]
    low, high = bootstrap_mrr_diff(hybrid, single, samples=BOOTSTRAP_SAMPLES)
    diff = report["modes"]["hybrid"]["mrr@10"] - report["modes"][best]["mrr@10"]
    name = report["name"].removeprefix("eval-")
    return f"| {group[0]} | {group[1]} | {name} | {diff:+.3f} [{low:+.3f}, {high:+.3f}] vs {best} |"


def _row(half: str, language: str, name: str, reports: list[dict[str, Any]]) -> str:
    n = sum(r["queries"] for r in reports)

    def mean(mode: str, key: str) -> float:
        return float(sum(r["modes"][mode][key] * r["queries"] for r in reports) / n)

    cells = [half, language, name, str(n)]
    for mode in MODES:
        cells += [f"{mean(mode, 'recall@10'):.3f}", f"{mean(mode, 'mrr@10'):.3f}"]
        cells.append(f"{mean(mode, 'mean_lines'):.1f}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="step", required=True)
    fetch_p = sub.add_parser("fetch")
    fetch_p.add_argument("--mirror", type=Path, help="folder of owner+name/repo bare clones")
    fetch_p.add_argument(
        "--manifest", type=Path, default=MANIFEST, help="the sets' TOML (bench/train_sets.toml)"
    )
    fetch_p.add_argument("--corpora", type=Path, help="where they unpack (bench/corpora)")
    run_p = sub.add_parser("run")
    run_p.add_argument("--half", choices=("tuning", "reporting"))
    run_p.add_argument("--quarry", default="quarry", help="the quarry command")
    table_p = sub.add_parser("table")
    table_p.add_argument("--results", type=Path, default=RESULTS)
    compare_p = sub.add_parser("compare")
    compare_p.add_argument("--results", type=Path, default=RESULTS)
    compare_p.add_argument("--baseline", type=Path, required=True)
    compare_p.add_argument("--per-set", action="store_true", help="then set by set, in points")
    compare_p.add_argument("--mode", choices=MODES, default="hybrid")
    for p in (fetch_p, run_p):
        p.add_argument("ids", nargs="*", help="set ids (default: all)")
    args = parser.parse_args()
    sets = load_sets(getattr(args, "manifest", MANIFEST))
    if args.step == "table":
        print(table(sets, args.results))
        return
    if args.step == "compare":
        print(compare(sets, args.results, args.baseline, args.mode))
        if args.per_set:
            print()
            print(compare_per_set(sets, args.results, args.baseline))
        return
    chosen = [e for e in sets if not args.ids or e["id"] in args.ids]
    unknown = set(args.ids) - {e["id"] for e in sets}
    if unknown:
        raise SystemExit(f"unknown set ids: {', '.join(sorted(unknown))}")
    for entry in chosen:
        if args.step == "fetch":
            print(f"{entry['id']}: {fetch(entry, args.mirror, args.corpora)}")
        elif args.half in (None, entry["half"]):
            print(f"{entry['id']}: {run(entry, args.quarry.split())}")


if __name__ == "__main__":
    main()
