-- Vectors reach the HNSW index after the job that wrote them, not inside its write
-- (issue 22 item 3). An HNSW insert at m 32 / ef_construction 200 (0018) costs several
-- milliseconds a row, and it was nearly all of a one-file change's write: 195 of 204 ms
-- for a file version of 17 rows in a 43k-row index (bench/results/jobs.md).
--
-- chunks.indexed says whether a row is in the HNSW index, which is now partial (WHERE
-- indexed). The write stage's upsert writes a small job's rows with indexed false; they
-- are found meanwhile by an exact scan of the rows not yet indexed
-- (chunks_vectors_pending), beside the index scan (pipeline/statements/search_sql.py),
-- so a row is searchable the moment its job is done. The store's index_pending sets
-- indexed, a bounded batch at a time, on the write queue after each commit and from the
-- sweeper (tasks/vectors.py); the HNSW insert happens there, off the job's path.
--
-- Rows already here, and rows written by anything other than the write stage's upsert
-- (bulk loaders, tests), are indexed: the column's default is true. A row without a
-- vector is written as indexed (it has nothing to index).
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS indexed boolean NOT NULL DEFAULT true;

CREATE INDEX IF NOT EXISTS chunks_vectors_pending ON chunks (repository_id, seq) WHERE NOT indexed;

-- The index rebuilt as partial, unless an index of that name already is (the column
-- added and the index built beforehand with CREATE INDEX CONCURRENTLY and swapped in,
-- README "Upgrading"): the rebuild locks the table for its whole build, as 0018's did
-- (~17 min at 1M rows).
-- A database whose legacy vectors were retired by a model switch has no such index (the
-- switch dropped it on purpose): nothing is built there.
DO $$
BEGIN
    IF to_regclass('chunks_embedding_hnsw') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_index AS i
        WHERE i.indexrelid = to_regclass('chunks_embedding_hnsw') AND i.indisvalid
          AND pg_get_indexdef(i.indexrelid) LIKE '% WHERE indexed'
    ) THEN
        DROP INDEX IF EXISTS chunks_embedding_hnsw;
        CREATE INDEX chunks_embedding_hnsw ON chunks
            USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 200)
            WHERE indexed;
    END IF;
END
$$;
