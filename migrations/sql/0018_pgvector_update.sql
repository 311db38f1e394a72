-- pgvector 0.8: iterative HNSW index scans (hnsw.iterative_scan, used by vector search)
-- and halfvec. A data folder made by the earlier stack (PostgreSQL 16.2, pgvector 0.6.2)
-- keeps its extension at 0.6.2 when the server's binaries are replaced by newer ones:
-- UPDATE brings the SQL objects to the version the installed binaries ship (a no-op when
-- they already match). The HNSW index needs no rebuild: 0.8 reads 0.6's index format.
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
