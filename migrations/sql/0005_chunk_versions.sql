-- Chunk rows keyed by file version: (repository, file sha256, chunk id). A file's new
-- version is written beside the old one, so search keeps reading the old chunks until
-- the job commits and removes the versions no longer current (VectorStore.retain_versions).
-- Chunk ids already include the path, so the key stays unique across paths.

ALTER TABLE chunks DROP CONSTRAINT chunks_pkey;
ALTER TABLE chunks ADD CONSTRAINT chunks_pkey PRIMARY KEY (repository_id, file_sha256, id);

-- Deletes by repository use either index's leading column; deletes by path and by
-- (path, file sha256), and the listing of file versions, use chunks_repository_path
-- (repository_id, path, file_sha256) from 0003, which stays as it is, as do the HNSW
-- (cosine) and GIN indexes.

-- The tsvector is computed by the writer in the same INSERT, from the text of
-- pipeline.lexical.lexical_text (identifiers kept whole and split into their words),
-- with the 'simple' configuration: no stemming and no stop words, as code needs.
COMMENT ON COLUMN chunks.tsv IS
    'to_tsvector(''simple'', pipeline.lexical.lexical_text(content)), written with the row';
