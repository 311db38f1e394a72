-- pgvector 0.8: iterative HNSW index scans (hnsw.iterative_scan, used by vector search)
-- and halfvec. A data folder made by the earlier stack (PostgreSQL 16.2, pgvector 0.6.2)
-- keeps its extension at 0.6.2 when the server's binaries are replaced by newer ones:
-- UPDATE brings the SQL objects to the version the installed binaries ship (a no-op when
-- they already match). pgvector 0.8 reads 0.6's HNSW index as it is.
ALTER EXTENSION vector UPDATE;

-- Refuse (and roll back, so that this migration runs again) when the server's pgvector
-- is still older than 0.8: the server needs newer binaries first (`make install` for the
-- local stack, the pgvector/pgvector:pg16 image in production).
DO $$
DECLARE
    found text := (SELECT extversion FROM pg_extension WHERE extname = 'vector');
BEGIN
    IF string_to_array(split_part(found, '-', 1), '.')::int[] < ARRAY[0, 8, 0] THEN
        RAISE EXCEPTION 'pgvector % is installed; Quarry needs 0.8 or newer (iterative index scans): upgrade the server''s pgvector, then migrate again', found;
    END IF;
END
$$;

-- The HNSW index with m 32 and ef_construction 200 (was 16 and 64): recall@10 of real
-- docstring queries 0.685 -> 0.950 at ef_search 100 -> 400 (bench/results/search.md,
-- "pgvector 0.8" section). Rebuilt here unless an index of that name already has these
-- parameters: on a large table the rebuild holds the table's lock for its whole build
-- (about 3.7 times the old build: ~17 min at 1M rows on 2 vCPUs, with
-- maintenance_work_mem large enough for the graph, ~3 GB, an estimate), so build it
-- beforehand with CREATE INDEX CONCURRENTLY and swap the names (README, "Upgrading"),
-- and this skips it.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_class
        WHERE oid = to_regclass('chunks_embedding_hnsw') AND reloptions @> ARRAY['m=32', 'ef_construction=200']
    ) THEN
        DROP INDEX IF EXISTS chunks_embedding_hnsw;
        CREATE INDEX chunks_embedding_hnsw ON chunks
            USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 200);
    END IF;
END
$$;
