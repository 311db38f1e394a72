"""The demo's raw vector query: the nearest chunks of the searchable snapshot.

A stand-in until hybrid search (`quarry search`) lands: embeds the query with the
bundled model and asks pgvector for the nearest chunks of the repository's searchable
snapshot, the way search will read them.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psycopg
from pgvector.psycopg import register_vector

from config.endpoints import resolve_endpoints
from config.settings import load_settings
from pipeline.adapters.st_embedder import (
    SentenceTransformerEmbedder,
    model_id_for,
    resolve_model_path,
)

QUERY = """
SELECT c.path, c.start_line, c.end_line, c.symbol, 1 - (c.embedding <=> %(q)s) AS score
FROM chunks c
JOIN repositories r ON r.id = c.repository_id
JOIN files f ON f.snapshot_id = r.searchable_snapshot_id
    AND f.path = c.path AND f.content_sha256 = c.file_sha256
WHERE r.tenant_id = 'default' AND r.name = %(repo)s
ORDER BY c.embedding <=> %(q)s
LIMIT %(k)s
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("query")
    parser.add_argument("--repo", required=True)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings()
    path = resolve_model_path(settings.embed_model)
    embedder = SentenceTransformerEmbedder(
        path, model_id=model_id_for(settings.embed_model), device="cpu"
    )
    vector = embedder.embed([args.query])[0]
    with psycopg.connect(resolve_endpoints(settings).postgres_dsn) as conn:
        register_vector(conn)
        rows = conn.execute(QUERY, {"q": vector, "repo": args.repo, "k": args.k}).fetchall()
    sys.stdout.write(f"query: {args.query!r}\n")
    for path, start, end, symbol, score in rows:
        sys.stdout.write(f"  {score:.3f}  {path}:{start}-{end}  {symbol}\n")


if __name__ == "__main__":
    main()
