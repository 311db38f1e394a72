"""``quarry eval REPO``: how well Quarry's search finds a repository's functions.

Builds a CodeSearchNet-style set from REPO's Python, Go, TypeScript/JavaScript, Java,
Rust, C#, Kotlin, PHP and C/C++ files (``cli.evaluation``: query = the first sentence of
a function's doc comment without the function's own name, target = that function),
packs the copy with every doc comment blanked into ``<data_dir>/eval/<name>.tar.gz``
(anew each run), uploads it to the API (the workers need no access to this machine's
disk) to be indexed under NAME (default ``eval-<folder name>``), then sends every query
to ``GET /v1/search`` in each mode (vector, lexical, hybrid), a few at a time, and reports
Recall@1/5/10, MRR@10 and the mean result size in lines per mode.

Exit codes: 0 the figures are printed; 1 the index job failed or was cancelled, or the
API failed; 2 a bad argument, or a REPO without usable doc comments.

Must not import: torch, drivers.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.console import err, guarded, out, settings
from cli.evaluation import (
    MIN_QUERY_WORDS,
    MRR_CUTOFF,
    EvalQuery,
    EvalSet,
    Hit,
    build_set,
    default_name,
    first_relevant_rank,
    hybrid_beats_single,
    score,
)
from cli.jobs import admitted, api_client, follow, print_summary
from pipeline.errors import ConfigError, InvalidInputError, TransientError
from pipeline.jobs import check_repo_name

MODES = ("vector", "lexical", "hybrid")
SEARCH_ATTEMPTS = 3
RETRY_BASE_S = 0.5
MAX_RETRY_WAIT_S = 30.0
COLUMNS = (
    ("R@1", "recall@1"),
    ("R@5", "recall@5"),
    ("R@10", "recall@10"),
    ("MRR@10", "mrr@10"),
    ("mean lines", "mean_lines"),
)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_repo)


def eval_repo(
    repo: Annotated[
        Path, typer.Argument(help="A repository folder or an unpacked source package.")
    ],
    *,
    name: Annotated[
        str | None, typer.Option(help="Repository name to index under (default: eval-<folder>).")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Results asked per search.")] = 10,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Searches in flight.")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    max_wait_s: Annotated[float, typer.Option(help="Longest wait for a full queue.")] = 600.0,
    keep_names: Annotated[
        bool,
        typer.Option(
            "--keep-names",
            help="Leave each function's own name in its query (as sets before issue 21 did).",
        ),
    ] = False,
) -> None:
    """Index REPO with its doc comments blanked and measure Recall@1/5/10 and MRR@10 of
    vector, lexical and hybrid search, querying with each function's doc comment
    (Python, Go, TypeScript/JavaScript, Java, Rust, C#, Kotlin, PHP, C/C++)."""
    root = repo.expanduser().resolve()
    eval_set = guarded(lambda: _eval_set(root, keep_names=keep_names))
    index_name = guarded(lambda: check_repo_name(name or default_name(root)))
    copy = settings().data_dir / "eval" / f"{index_name}.tar.gz"
    guarded(lambda: _write_archive(eval_set.files, copy))
    if not as_json:
        _print_set(root, eval_set, k)
    client = api_client()
    _index(client, copy, index_name, quiet=as_json, max_wait_s=max_wait_s)
    hits = _search_all(client, eval_set.queries, index_name, k, workers, quiet=as_json)
    report = build_report(str(root), index_name, eval_set.queries, hits)
    report["keep_names"] = keep_names
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        _print_table(report)


def build_report(
    repo: str, name: str, queries: Sequence[EvalQuery], hits: Mapping[str, Sequence[list[Hit]]]
) -> dict[str, Any]:
    """The figures per mode, per language (``languages``, each with its own ``queries``
    and ``modes``) and, per query, where its target ranked in each mode (``per_query``,
    null beyond the cut-off): what a paired comparison of two runs needs."""
    figures = {mode: score(queries, hits[mode]) for mode in MODES}
    by_language: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        by_language.setdefault(query.language, []).append(i)
    languages = {
        language: {
            "queries": len(picked),
            "modes": {
                mode: score([queries[i] for i in picked], [hits[mode][i] for i in picked])
                for mode in MODES
            },
        }
        for language, picked in sorted(by_language.items())
    }
    per_query = [
        {
            "text": q.text,
            "path": q.path,
            "start_line": q.start_line,
            "end_line": q.end_line,
            "name": q.name,
            "language": q.language,
            "rank": {mode: first_relevant_rank(q, hits[mode][i]) for mode in MODES},
        }
        for i, q in enumerate(queries)
    ]
    return {
        "repo": repo,
        "name": name,
        "queries": len(queries),
        "modes": figures,
        "hybrid_beats_single": hybrid_beats_single(figures),
        "languages": languages,
        "per_query": per_query,
    }


def _eval_set(root: Path, *, keep_names: bool = False) -> EvalSet:
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a folder")
    eval_set = build_set(root, keep_names=keep_names)
    if not eval_set.queries:
        raise InvalidInputError(
            f"{root}: no usable doc comments: none of its {len(eval_set.files)} source files "
            "with doc comments (tests, docs and examples left out) "
            "has a function whose doc comment opens with a sentence of "
            f"{MIN_QUERY_WORDS} or more words (its own name left out) that no other "
            "function shares"
        )
    return eval_set


def _write_archive(files: Mapping[str, bytes], archive: Path) -> None:
    """The blanked files as a ``.tar.gz`` at ``archive`` (replaced if it exists), under
    one top folder named after the archive: the API indexes an archive of one top folder
    from inside it, so without one, a set whose files all sit in one folder
    (``more_itertools/``) would be indexed without that folder in its paths, and no
    result would ever match a query's path."""
    top = archive.name.removesuffix(".tar.gz")
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "w:gz") as tar:
            for rel, data in sorted(files.items()):
                member = tarfile.TarInfo(f"{top}/{rel}")
                member.size, member.mtime, member.mode = len(data), 0, 0o644
                tar.addfile(member, io.BytesIO(data))
    except OSError as exc:
        raise ConfigError(f"cannot write the evaluation copy to {archive}: {exc}") from exc


def _print_set(root: Path, eval_set: EvalSet, k: int) -> None:
    languages = Counter(q.language for q in eval_set.queries)
    per_language = ", ".join(f"{n} {language}" for language, n in sorted(languages.items()))
    err.print(
        f"{root}: {len(eval_set.files)} files, {len(eval_set.queries)} queries "
        f"({per_language}; {eval_set.ambiguous} left out for a text shared with another "
        f"function, {len(eval_set.unparsable)} files left out as not parsing cleanly)",
        markup=False,
    )
    if k < MRR_CUTOFF:
        err.print(f"--k {k}: R@10 and MRR@10 count only the first {k} results", markup=False)


def _index(client: Any, copy: Path, name: str, *, quiet: bool, max_wait_s: float) -> None:
    """Upload the archive ``copy`` as ``name`` and wait for the job; exit 1 unless it
    ends done."""
    params = {"repo": name}
    created = guarded(lambda: admitted(lambda: client.upload_archive(copy, params), max_wait_s))
    job_id = created["job_id"]
    if not quiet:
        err.print(f"indexing {copy} as {name}: job {job_id}", markup=False)
    final = follow(client, job_id, quiet=quiet)
    if not quiet:
        print_summary(final)
    if final["status"] != "done":
        message = f": {final['message']}" if final.get("message") else ""
        err.print(
            f"quarry: error: the index job {job_id} of {name} ended {final['status']}{message}",
            markup=False,
        )
        raise typer.Exit(1)


def _search(client: Any, text: str, name: str, k: int, mode: str) -> list[Hit]:
    """One search's results as hits; a transient failure is tried again, twice."""
    attempt = 1
    while True:
        try:
            answer = client.search(text, repo=name, k=k, mode=mode)
        except TransientError as exc:
            if attempt >= SEARCH_ATTEMPTS:
                raise
            wait_s = getattr(exc, "retry_after_s", RETRY_BASE_S * 2**attempt)
            time.sleep(min(MAX_RETRY_WAIT_S, wait_s))
            attempt += 1
            continue
        return [(r["path"], int(r["start_line"]), int(r["end_line"])) for r in answer["results"]]


def _search_all(
    client: Any,
    queries: Sequence[EvalQuery],
    name: str,
    k: int,
    workers: int,
    *,
    quiet: bool,
) -> dict[str, list[list[Hit]]]:
    """Every query in every mode, ``workers`` at a time; per mode, hits in query order."""
    hits: dict[str, list[list[Hit]]] = {mode: [[] for _ in queries] for mode in MODES}
    progress = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("queries"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )
    with progress, ThreadPoolExecutor(max_workers=workers) as pool:
        bars = {mode: progress.add_task(mode, total=len(queries)) for mode in MODES}
        futures: dict[Future[list[Hit]], tuple[str, int]] = {
            pool.submit(_search, client, q.text, name, k, mode): (mode, i)
            for i, q in enumerate(queries)
            for mode in MODES
        }
        try:
            for future in as_completed(futures):
                mode, i = futures[future]
                hits[mode][i] = guarded(future.result)
                progress.advance(bars[mode])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the running few still finish
            raise
    return hits


def _print_table(report: dict[str, Any]) -> None:
    table = Table("mode", title=f"{report['name']} ({report['repo']})")
    for label in ("queries", *(label for label, _ in COLUMNS)):
        table.add_column(label, justify="right")
    for mode, figures in report["modes"].items():
        cells = [
            f"{figures[key]:.1f}" if key == "mean_lines" else f"{figures[key]:.3f}"
            for _, key in COLUMNS
        ]
        table.add_row(mode, str(report["queries"]), *cells)
    out.print(table)
    verdict = "yes" if report["hybrid_beats_single"] else "no"
    out.print(f"hybrid beats vector and lexical on MRR@10: {verdict}", markup=False)
