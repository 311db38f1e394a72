-- Repository deletion (pipeline/stages/deletion.py, statements in
-- pipeline/statements/deletion_sql.py).
--
-- DELETE /v1/repos/{name} marks the repository (deletion_id) and records a deletion in one
-- transaction; from then on the repository is hidden from listings and search and takes
-- no new job. A write-queue task then removes its graph nodes and its rows in bounded
-- batches, records what it removed here, and last collects the source blobs and
-- embedding-cache rows its content held that nothing else holds any more.
ALTER TABLE repositories ADD COLUMN deletion_id uuid;

CREATE TABLE repo_deletions (
    id             uuid PRIMARY KEY,
    tenant_id      text NOT NULL,
    repo_name      text NOT NULL,
    repository_id  bigint NOT NULL,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'done', 'failed')),
    stage          text NOT NULL DEFAULT 'queued',
    counters       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX repo_deletions_tenant ON repo_deletions (tenant_id, created_at DESC);
CREATE INDEX repo_deletions_unfinished ON repo_deletions (updated_at)
    WHERE status IN ('queued', 'running');

-- Content hashes the deleted rows held (kind 'blob': a file's content, a source blob;
-- kind 'cache': a chunk's content, an embedding-cache key), written in the same
-- statement that deletes the rows, so a deletion resumed after a crash still knows them.
CREATE TABLE repo_deletion_hashes (
    deletion_id  uuid NOT NULL REFERENCES repo_deletions (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('blob', 'cache')),
    sha256       text NOT NULL,
    PRIMARY KEY (deletion_id, kind, sha256)
);

-- Cache collection asks, per content hash, whether any chunk still has that content.
CREATE INDEX chunks_content_sha256 ON chunks (content_sha256);
