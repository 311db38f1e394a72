"""The pure parts of ``quarry bench e2e`` / ``incremental``: what is changed, how the
figures are derived, the shape of the result.

Owns: the corpus copy (the files Quarry's selection takes, copied into a scratch tree,
so that the same files reach Quarry and CocoIndex and edits never touch the corpus),
the choice of changed files for the incremental steps (1 file, then fractions of the
files, disjoint, seeded), the edit itself (a small function or paragraph appended), the
ratios, and the one JSON object a run prints.

Must not import: torch, drivers, api/, workers/, tasks/.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_FRACTIONS = (0.01, 0.10, 0.20)
DEFAULT_FRACTIONS_TEXT = "0.01,0.1,0.2"
EDITABLE_SUFFIXES = (".py", ".md", ".rst", ".txt")


def copy_tree(root: Path, paths: Sequence[str], dest: Path) -> int:
    """Copy ``paths`` (relative to ``root``) into ``dest``; their bytes in all."""
    total = 0
    for rel in paths:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, target)
        total += target.stat().st_size
    return total


def change_counts(total_files: int, fractions: Sequence[float]) -> list[int]:
    """How many files each incremental step changes: 1, then each fraction of the files
    (at least 1), in order."""
    if total_files < 1:
        raise ValueError("change_counts: the corpus has no files")
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"change fraction {fraction}: not in (0, 1]")
    return [1, *(max(1, round(f * total_files)) for f in fractions)]


def pick_changes(paths: Sequence[str], counts: Sequence[int], seed: int) -> list[list[str]]:
    """Disjoint sets of editable files, one per step, drawn with ``seed`` (sorted within
    a set). Raises ValueError when there are not enough editable files."""
    editable = sorted(p for p in paths if p.endswith(EDITABLE_SUFFIXES))
    if sum(counts) > len(editable):
        raise ValueError(
            f"incremental steps need {sum(counts)} editable files "
            f"({', '.join(EDITABLE_SUFFIXES)}); the corpus has {len(editable)}"
        )
    drawn = random.Random(seed).sample(editable, sum(counts))
    sets, start = [], 0
    for count in counts:
        sets.append(sorted(drawn[start : start + count]))
        start += count
    return sets


def edit_text(path: str, tag: str) -> str:
    """The text appended to ``path`` for an edit: new content, so one chunk changes."""
    if path.endswith(".py"):
        return f"\n\ndef quarry_bench_edit_{tag}(value):\n    return value * 2 + {len(tag)}\n"
    return f"\n\nQuarry bench edit {tag}: one more paragraph.\n"


def apply_edits(tree: Path, paths: Sequence[str], tag: str) -> None:
    for rel in paths:
        with (tree / rel).open("a", encoding="utf-8") as handle:
            handle.write(edit_text(rel, tag))


def ratio(numerator_s: float | None, denominator_s: float | None) -> float | None:
    """``numerator_s / denominator_s`` to 3 places; None when either is missing or the
    denominator is not positive."""
    if numerator_s is None or denominator_s is None or denominator_s <= 0:
        return None
    return round(numerator_s / denominator_s, 3)


def per_s(count: int, seconds: float | None) -> float | None:
    if seconds is None or seconds <= 0:
        return None
    return round(count / seconds, 1)


def cold_figures(files: int, chunks: int, wall_s: float, raw_encode_s: float) -> dict[str, Any]:
    """The headline of a cold run. ``ratio`` is end-to-end chunks/s over raw encode
    chunks/s of the same chunks, i.e. raw_encode_s / wall_s (target >= 0.9)."""
    return {
        "files": files,
        "chunks": chunks,
        "wall_s": round(wall_s, 2),
        "raw_encode_s": round(raw_encode_s, 2),
        "ratio": ratio(raw_encode_s, wall_s),
        "files_per_s": per_s(files, wall_s),
        "chunks_per_s": per_s(chunks, wall_s),
        "raw_chunks_per_s": per_s(chunks, raw_encode_s),
    }


def incremental_step(changed: int, wall_s: float, cold_wall_s: float) -> dict[str, Any]:
    """One incremental step against the cold run: ``speedup`` = cold / step."""
    return {
        "changed_files": changed,
        "wall_s": round(wall_s, 3),
        "speedup": ratio(cold_wall_s, wall_s),
    }


def targets(result: dict[str, Any]) -> dict[str, bool | None]:
    """Which of issue 10's targets a result meets (None: not measured in it)."""
    steps = {s["label"]: s for s in result.get("incremental", [])}
    coco = result.get("cocoindex") or {}
    one = steps.get("1 file")
    at_1 = steps.get("1%")
    at_20 = steps.get("20%")
    vs_coco = result.get("wall_vs_cocoindex")
    onnx = str(result.get("backend", "")).startswith("onnx-")
    same = (
        result.get("ratio_vs_raw_own", result.get("ratio_vs_raw_int8"))
        if onnx
        else result.get("ratio")
    )
    return {
        # Against the raw encode of the same backend: int8 against fp32 would flatter it.
        "cold_ratio_ge_0.9": None if same is None else same >= 0.9,
        "int8_wall_le_0.6_cocoindex": (
            None
            if vs_coco is None or result.get("backend") != "onnx-int8" or not coco
            else vs_coco <= 0.6
        ),
        # Issue 22: the default path, whatever its backend.
        "wall_le_0.6_cocoindex": None if vs_coco is None or not coco else vs_coco <= 0.6,
        "one_file_le_1s": None if one is None else one["wall_s"] <= 1.0,
        "speedup_ge_10_at_1pct": None if at_1 is None else (at_1["speedup"] or 0) >= 10,
        "speedup_ge_2_at_20pct": None if at_20 is None else (at_20["speedup"] or 0) >= 2,
    }


def step_label(index: int, fractions: Sequence[float]) -> str:
    return "1 file" if index == 0 else f"{fractions[index - 1] * 100:g}%"


def parse_sweep(text: str) -> list[tuple[int, int]]:
    """``"1x2,2x1"`` -> [(1, 2), (2, 1)]: cpu worker processes x embed torch threads."""
    combos = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        left, sep, right = part.partition("x")
        if not sep or not left.isdigit() or not right.isdigit() or "0" in (left, right):
            raise ValueError(f"sweep entry {part!r}: expected CPUWORKERSxTHREADS, e.g. 2x1")
        combos.append((int(left), int(right)))
    if not combos:
        raise ValueError("sweep: no entries")
    return combos


def parse_batch_sizes(text: str) -> list[int]:
    """``"64,256,1024"`` -> [64, 256, 1024]; each between 1 and 8192."""
    sizes = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if not part.isdigit() or not 1 <= int(part) <= 8192:
            raise ValueError(f"batch size {part!r}: expected an integer in 1..8192")
        sizes.append(int(part))
    if not sizes:
        raise ValueError("batch sizes: none given")
    return sizes
