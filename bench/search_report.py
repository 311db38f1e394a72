"""The result object of ``quarry bench search``: figures, targets, generator, machine.

Must not import: torch, api/, any driver.
"""

from __future__ import annotations

import datetime
import os
import platform
from typing import TYPE_CHECKING, Any

from bench.machine import cpu_model

if TYPE_CHECKING:
    from bench.search_options import BenchOptions, Prepared

TARGET_P95_MS = 30.0
TARGET_RECALL = 0.95


def report(
    options: BenchOptions,
    data: Prepared,
    *,
    rows: int,
    phases: dict[str, Any],
    figures: dict[str, Any],
    ram: int,
) -> dict[str, Any]:
    k, full, cached, vector = options.k, phases["full"], phases["cached"], phases["vector"]
    recall = next(v for v in vector if v["ef_search"] == options.ef_search)[f"recall_at_{k}"]
    sources = sorted({q.source for q in data.measured})
    synthetic = data.synthetic
    return {
        "corpus": options.root.name,
        "chunks": rows,
        "synthetic": options.count,
        "real": len(data.real.chunks),
        "clusters": synthetic.clusters,
        "queries": len(data.measured),
        "queries_by_source": {s: sum(q.source == s for q in data.measured) for s in sources},
        "warmup_queries": len(data.warm),
        "k": k,
        "ef_search": options.ef_search,
        "lexical_seed": options.lexical_seed,
        "p50_ms": full["p50_ms"],
        "p95_ms": full["p95_ms"],
        "p99_ms": full["p99_ms"],
        "p50_cached_ms": cached["p50_ms"],
        "p95_cached_ms": cached["p95_ms"],
        "p99_cached_ms": cached["p99_ms"],
        "steps": full["steps"],
        "steps_cached": cached["steps"],
        "empty_results": full["empty"],
        f"recall_at_{k}": recall,
        "vector": vector,
        "plans": {"cached": cached["plans"], "end_to_end": full["plans"]},
        "targets": {"p95_ms": TARGET_P95_MS, f"recall_at_{k}": TARGET_RECALL},
        "meets_p95": full["p95_ms"] <= TARGET_P95_MS,
        "meets_recall": recall >= TARGET_RECALL,
        "existing": bool(options.existing),
        **figures,
        "generator": {
            "seed": options.seed,
            "chunks_per_cluster": synthetic.chunks_per_cluster,
            "chunks_per_file": synthetic.chunks_per_file,
            "topic_share": synthetic.topic_share,
            "spread": list(synthetic.spread),
        },
        "machine": machine(ram),
        "date": datetime.date.today().isoformat(),
    }


def machine(ram: int) -> dict[str, Any]:
    from importlib.metadata import version

    packages = ("numpy", "faiss-cpu", "onnxruntime", "psycopg", "pgvector")  # pgvector-python
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "loadavg_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
    }
