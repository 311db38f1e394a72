"""The load benchmark's pure parts: its query mix and the summary of what it measured.

Owns: building a seeded, realistic mix of ``/v1/search`` requests from each tenant's
corpus (natural-language questions taken from docstrings, identifiers taken from the
functions they document, and queries narrowed by language, path or kind; with or
without the repository named); nearest-rank percentiles; the latency summary of a
phase (count, P50/P95/P99/max in milliseconds); and counting errors by kind.

No I/O, no clock: ``bench/api_load.py`` feeds it. Must not import: api/, httpx, any
driver.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

KINDS = ("natural", "identifier", "filtered")
DEFAULT_WEIGHTS: Mapping[str, float] = {"natural": 0.5, "identifier": 0.25, "filtered": 0.25}


@dataclass(frozen=True, slots=True)
class Documented:
    """A documented function of a corpus: its docstring's first sentence, file and name."""

    text: str
    path: str
    name: str


@dataclass(frozen=True, slots=True)
class TenantCorpus:
    """What one tenant searches: its repository and the documented functions in it."""

    tenant: str
    repo: str
    functions: tuple[Documented, ...]


@dataclass(frozen=True, slots=True)
class LoadQuery:
    """One request of the mix: whose token sends it, its kind, its query parameters."""

    tenant: str
    kind: str
    params: tuple[tuple[str, str], ...]


def build_mix(
    corpora: Sequence[TenantCorpus],
    count: int,
    *,
    seed: int,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
) -> list[LoadQuery]:
    """``count`` requests, the tenants taking turns, each kind drawn by ``weights``.

    - natural: a docstring's first sentence;
    - identifier: the function's name (``lexical`` matches it; ``named_first`` ranks it);
    - filtered: a docstring sentence or a name with ``lang=python`` and the function's
      folder as ``path``, or ``kind=function,method``.

    Half the requests name the tenant's repository, half search all its repositories.
    A ValueError names an empty corpus, an unknown kind or weights that sum to zero.
    """
    if count < 0:
        raise ValueError(f"count: must be at least 0, got {count}")
    for corpus in corpora:
        if not corpus.functions:
            raise ValueError(f"tenant {corpus.tenant!r}: no documented function to ask about")
    unknown = sorted(set(weights) - set(KINDS))
    if unknown:
        raise ValueError(f"weights: unknown kind {unknown[0]!r} (kinds: {', '.join(KINDS)})")
    kinds = [k for k in KINDS if weights.get(k, 0) > 0]
    if count == 0:
        return []
    if not corpora:
        raise ValueError("corpora: at least one tenant's corpus is needed")
    if not kinds:
        raise ValueError("weights: at least one kind needs a weight above 0")
    rng = random.Random(seed)
    out: list[LoadQuery] = []
    for number in range(count):
        corpus = corpora[number % len(corpora)]
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        function = rng.choice(corpus.functions)
        out.append(LoadQuery(corpus.tenant, kind, _params(kind, corpus, function, rng)))
    return out


def _params(
    kind: str, corpus: TenantCorpus, function: Documented, rng: random.Random
) -> tuple[tuple[str, str], ...]:
    params: list[tuple[str, str]] = []
    if kind == "identifier":
        params.append(("q", function.name))
    elif kind == "natural":
        params.append(("q", function.text))
    else:
        params.append(("q", rng.choice((function.text, function.name))))
        folder = str(PurePosixPath(function.path).parent)
        if rng.random() < 0.5 and folder != ".":
            params += [("lang", "python"), ("path", folder)]
        else:
            params.append(("kind", "function,method"))
    if rng.random() < 0.5:
        params.append(("repo", corpus.repo))
    params.append(("k", "10"))
    return tuple(params)


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank ``pct`` percentile (0 < pct <= 100): the smallest value with at
    least ``pct`` % of the values at or below it. A ValueError for no values."""
    if not values:
        raise ValueError("percentile: no values")
    if not 0 < pct <= 100:
        raise ValueError(f"pct: must be in (0, 100], got {pct}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, Any]:
    """Count, P50/P95/P99, max and mean of ``latencies_s``, in ms (None when empty)."""
    if not latencies_s:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ms = [s * 1000 for s in latencies_s]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(sum(ms) / len(ms), 1),
    }


def errors_by_kind(outcomes: Iterable[str]) -> dict[str, int]:
    """How many requests ended in each error (``http_503``, ``timeout``...); ``ok`` is
    not an error and is left out."""
    return dict(sorted(Counter(o for o in outcomes if o != "ok").items()))
