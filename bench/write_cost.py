"""What one file version's chunk-row write costs, piece by piece, on a database that
already holds an index (a stack's, e.g. ``bench/jobs.py --small-jobs``'s Django).

Usage: .venv/bin/python bench/write_cost.py --dsn postgresql://postgres@127.0.0.1:PORT/quarry
       [--files 30] [--rounds 2]

Picks ``--files`` file versions of 15-25 rows and, for each, inserts its rows again under
a new file sha (``INSERT ... SELECT``, every column as stored) in a transaction that is
rolled back, so the database is left as it was. Timed with everything the INSERT
maintains, then with one piece dropped or disabled inside the transaction at a time:
the HNSW index, the full-text GIN index, the postings triggers of migration 0020, and
all three. Prints the median and 90th percentile per file version.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        cols = [
            str(r[0])
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'chunks'"
                " AND is_generated = 'NEVER' AND is_identity = 'NO' ORDER BY ordinal_position"
            )
        ]
        indexes = [str(r[0]) for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'"
        )]  # fmt: skip
        triggers = [str(r[0]) for r in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'chunks'::regclass AND NOT tgisinternal"
        )]  # fmt: skip
        files = conn.execute(
            "SELECT repository_id, path, file_sha256, count(*) FROM chunks GROUP BY 1, 2, 3"
            " HAVING count(*) BETWEEN 15 AND 25 ORDER BY md5(path) LIMIT %s",
            (args.files,),
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM chunks").fetchone()
        rows = statistics.median(int(f[3]) for f in files)
        count = total[0] if total else 0
        print(f"{count} chunk rows; {len(files)} file versions of median {rows} rows")
        chosen = ", ".join("md5(random()::text)" if c == "file_sha256" else c for c in cols)
        insert = (
            f"INSERT INTO chunks ({', '.join(cols)}) SELECT {chosen} FROM chunks"
            " WHERE repository_id = %s AND path = %s AND file_sha256 = %s"
        )
        hnsw = [f"DROP INDEX {i}" for i in indexes if "hnsw" in i]
        gin = [f"DROP INDEX {i}" for i in indexes if i == "chunks_tsv"]
        quiet = [f"ALTER TABLE chunks DISABLE TRIGGER {t}" for t in triggers]
        cases: tuple[tuple[str, list[str]], ...] = (
            ("everything", []),
            ("without the HNSW index", hnsw),
            ("without the GIN index", gin),
            ("without the postings triggers", quiet),
            ("without the three", hnsw + gin + quiet),
        )
        for _ in range(args.rounds):
            for label, drops in cases:
                took = []
                for repo_id, path, sha, _ in files:
                    with conn.transaction(force_rollback=True):
                        for statement in drops:
                            conn.execute(statement)
                        started = time.perf_counter()
                        conn.execute(insert, (repo_id, path, sha))
                        took.append((time.perf_counter() - started) * 1000)
                p90 = sorted(took)[int(len(took) * 0.9)]
                print(f"{label:32s} median {statistics.median(took):7.1f} ms  p90 {p90:7.1f} ms")


if __name__ == "__main__":
    main()
